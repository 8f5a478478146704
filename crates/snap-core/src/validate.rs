//! Input checks shared by every backend, so the same bad input gets the same typed error
//! everywhere and nothing is written.
//!
//! Backend authors call these at the top of each store method, before any I/O.

use serde_json::Value;

use crate::error::InvalidInput;
use crate::event::NewEvent;
use crate::snapshot::Snapshot;

/// The longest aggregate or event type name, in UTF-8 bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The highest version a store holds: SQL backends keep versions in a signed 64-bit column.
pub const MAX_VERSION: u64 = i64::MAX as u64;

/// How deeply a state or payload may nest arrays and objects.
///
/// `serde_json` refuses to parse text nested deeper than 128 levels, so a deeper value could be
/// written to a text-backed store but never read back; refusing it up front keeps every
/// backend's round trip exact.
pub const MAX_JSON_DEPTH: usize = 100;

/// Checks an aggregate type: 1..=255 bytes, no NUL.
pub fn aggregate_type(value: &str) -> Result<(), InvalidInput> {
    name("aggregate_type", value)
}

/// Checks an event type: 1..=255 bytes, no NUL.
pub fn event_type(value: &str) -> Result<(), InvalidInput> {
    name("event_type", value)
}

fn name(field: &'static str, value: &str) -> Result<(), InvalidInput> {
    if value.is_empty() {
        return Err(InvalidInput::Empty { field });
    }
    if value.len() > MAX_NAME_LEN {
        return Err(InvalidInput::TooLong {
            field,
            len: value.len(),
            max: MAX_NAME_LEN,
        });
    }
    if value.contains('\0') {
        return Err(InvalidInput::ContainsNul { field });
    }
    Ok(())
}

/// Checks that a version fits the stores' signed 64-bit columns.
pub fn version(field: &'static str, value: u64) -> Result<(), InvalidInput> {
    if value > MAX_VERSION {
        return Err(InvalidInput::OutOfRange {
            field,
            value,
            reason: "versions are at most i64::MAX",
        });
    }
    Ok(())
}

/// Checks a JSON value's nesting depth against [`MAX_JSON_DEPTH`].
pub fn json_depth(field: &'static str, value: &Value) -> Result<(), InvalidInput> {
    let depth = depth_up_to(value, MAX_JSON_DEPTH + 1);
    if depth > MAX_JSON_DEPTH {
        return Err(InvalidInput::TooDeep {
            field,
            depth,
            max: MAX_JSON_DEPTH,
        });
    }
    Ok(())
}

/// The nesting depth of `value`, counting stops at `limit`. Iterative, so a hostile value
/// cannot overflow the stack here.
fn depth_up_to(value: &Value, limit: usize) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let depth = depth + 1;
        deepest = deepest.max(depth);
        if deepest >= limit {
            return deepest;
        }
        stack.extend(children.map(|child| (child, depth)));
    }
    deepest
}

/// The name of a JSON value's kind, for error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks everything about a snapshot before it is saved: type, version in `1..=i64::MAX`,
/// schema version at least 1, state a JSON object of bounded depth.
pub fn snapshot(snapshot: &Snapshot) -> Result<(), InvalidInput> {
    aggregate_type(&snapshot.aggregate_type)?;
    if snapshot.version == 0 {
        return Err(InvalidInput::OutOfRange {
            field: "version",
            value: 0,
            reason: "a snapshot reflects at least one event, so its version is at least 1",
        });
    }
    version("version", snapshot.version)?;
    if snapshot.schema_version == 0 {
        return Err(InvalidInput::OutOfRange {
            field: "schema_version",
            value: 0,
            reason: "schema versions start at 1",
        });
    }
    if !snapshot.state.is_object() {
        return Err(InvalidInput::NotAnObject {
            field: "state",
            found: json_kind(&snapshot.state),
        });
    }
    json_depth("state", &snapshot.state)
}

/// Checks an append before it is written: the type, every event, and that the stream's new
/// version stays within [`MAX_VERSION`].
pub fn append(
    aggregate_type_value: &str,
    expected_version: u64,
    events: &[NewEvent],
) -> Result<(), InvalidInput> {
    aggregate_type(aggregate_type_value)?;
    version("expected_version", expected_version)?;
    let count = u64::try_from(events.len()).unwrap_or(u64::MAX);
    let new_version = expected_version.saturating_add(count);
    version("resulting version", new_version)?;
    for event in events {
        event_type(&event.event_type)?;
        json_depth("payload", &event.payload)?;
        json_depth("metadata", &event.metadata)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn depth_counts_nesting() {
        assert_eq!(depth_up_to(&json!(1), 10), 0);
        assert_eq!(depth_up_to(&json!({}), 10), 1);
        assert_eq!(depth_up_to(&json!({"a": [1, {"b": []}]}), 10), 4);
    }

    #[test]
    fn depth_stops_at_limit() {
        let mut value = json!(null);
        for _ in 0..1_000 {
            value = json!([value]);
        }
        assert_eq!(depth_up_to(&value, 101), 101);
        assert!(matches!(
            json_depth("state", &value),
            Err(InvalidInput::TooDeep {
                depth: 101,
                max: 100,
                ..
            })
        ));
    }

    #[test]
    fn names_are_checked_in_bytes() {
        assert!(aggregate_type(&"é".repeat(127)).is_ok());
        assert!(matches!(
            aggregate_type(&"é".repeat(128)),
            Err(InvalidInput::TooLong { len: 256, .. })
        ));
        assert!(matches!(
            aggregate_type(""),
            Err(InvalidInput::Empty { .. })
        ));
        assert!(matches!(
            event_type("a\0b"),
            Err(InvalidInput::ContainsNul {
                field: "event_type"
            })
        ));
    }
}
