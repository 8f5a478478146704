//! Where a snapshot's state differs from a replay's: JSON pointers and both values.

use serde::Serialize;
use serde_json::Value;

/// At most this many differences are listed for one aggregate.
pub(crate) const LIMIT: usize = 50;

/// One place where the two states differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Difference {
    /// A JSON pointer (RFC 6901) into the state; "" for the whole state.
    pub(crate) path: String,
    /// The snapshot's value there, `None` when the snapshot has nothing there.
    pub(crate) snapshot: Option<Value>,
    /// The replay's value there, `None` when the replay has nothing there.
    pub(crate) replay: Option<Value>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |value: &Option<Value>| {
            value
                .as_ref()
                .map_or_else(|| "(absent)".to_owned(), Value::to_string)
        };
        let path = if self.path.is_empty() {
            "(the whole state)"
        } else {
            &self.path
        };
        write!(
            f,
            "{path}: snapshot {}, replay {}",
            shown(&self.snapshot),
            shown(&self.replay)
        )
    }
}

/// The differences between `snapshot` and `replay`, objects and arrays compared member by
/// member, at most [`LIMIT`].
pub(crate) fn diff(snapshot: &Value, replay: &Value) -> Vec<Difference> {
    let mut found = Vec::new();
    walk(String::new(), Some(snapshot), Some(replay), &mut found);
    found
}

fn walk(path: String, a: Option<&Value>, b: Option<&Value>, found: &mut Vec<Difference>) {
    if found.len() >= LIMIT || a == b {
        return;
    }
    match (a, b) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                walk(format!("{path}/{escaped}"), a.get(key), b.get(key), found);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for index in 0..a.len().max(b.len()) {
                walk(format!("{path}/{index}"), a.get(index), b.get(index), found);
            }
        }
        _ => found.push(Difference {
            path,
            snapshot: a.cloned(),
            replay: b.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::diff;
    use serde_json::json;

    #[test]
    fn equal_states_have_no_difference() {
        let state = json!({"balance": 5, "owners": ["a"]});
        assert!(diff(&state, &state).is_empty());
    }

    #[test]
    fn differences_are_found_by_path() {
        let snapshot = json!({"balance": 100, "owners": ["a", "b"], "a/b": 1, "gone": true});
        let replay = json!({"balance": 120, "owners": ["a"], "a/b": 2});
        let found: Vec<String> = diff(&snapshot, &replay)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "/a~1b: snapshot 1, replay 2",
                "/balance: snapshot 100, replay 120",
                "/gone: snapshot true, replay (absent)",
                "/owners/1: snapshot \"b\", replay (absent)",
            ]
        );
        assert_eq!(
            diff(&json!(1), &json!("1"))[0].to_string(),
            "(the whole state): snapshot 1, replay \"1\""
        );
    }
}
