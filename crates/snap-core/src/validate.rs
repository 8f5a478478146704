//! Input checks shared by every backend, so the same bad input gets the same typed error
//! everywhere and nothing is written.
//!
//! Backend authors call these at the top of each store method, before any I/O.

use serde_json::Value;
use time::OffsetDateTime;

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

/// Checks the optional aggregate type of an operator query ([`SnapshotAdmin`](crate::SnapshotAdmin)),
/// as `backend`'s error.
pub fn admin_type(
    backend: &'static str,
    type_name: Option<&str>,
) -> Result<(), crate::error::BackendError> {
    match type_name {
        Some(t) => aggregate_type(t)
            .map_err(|e| crate::error::BackendError::new(backend, e).context("aggregate type")),
        None => Ok(()),
    }
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

/// Checks a JSON value every backend can store and read back exactly: nested at most
/// [`MAX_JSON_DEPTH`] levels, and no NUL character in a string or key (PostgreSQL's JSONB
/// cannot hold one).
pub fn json(field: &'static str, value: &Value) -> Result<(), InvalidInput> {
    json_at(field, value, 0)
}

/// [`json`] for a value at `depth`. Recursive without a heap stack: the depth check comes
/// before each descent, so the recursion is at most [`MAX_JSON_DEPTH`] deep even for a hostile
/// value.
fn json_at(field: &'static str, value: &Value, depth: usize) -> Result<(), InvalidInput> {
    match value {
        Value::String(text) if text.contains('\0') => Err(InvalidInput::ContainsNul { field }),
        Value::Array(items) => {
            if depth + 1 > MAX_JSON_DEPTH {
                return Err(too_deep(field, depth + 1));
            }
            items
                .iter()
                .try_for_each(|child| json_at(field, child, depth + 1))
        }
        Value::Object(map) => {
            if depth + 1 > MAX_JSON_DEPTH {
                return Err(too_deep(field, depth + 1));
            }
            map.iter().try_for_each(|(key, child)| {
                if key.contains('\0') {
                    return Err(InvalidInput::ContainsNul { field });
                }
                json_at(field, child, depth + 1)
            })
        }
        _ => Ok(()),
    }
}

fn too_deep(field: &'static str, depth: usize) -> InvalidInput {
    InvalidInput::TooDeep {
        field,
        depth,
        max: MAX_JSON_DEPTH,
    }
}

/// The earliest and latest `created_at` and `updated_at` every backend can store: years 1 to 9999 (UTC).
pub fn timestamp(field: &'static str, value: OffsetDateTime) -> Result<(), InvalidInput> {
    let year = value.to_offset(time::UtcOffset::UTC).year();
    if (1..=9999).contains(&year) {
        Ok(())
    } else {
        Err(InvalidInput::OutOfRange {
            field,
            value: u64::from(year.unsigned_abs()),
            reason: "timestamps must fall in the years 1 to 9999 (UTC)",
        })
    }
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
    json("state", &snapshot.state)?;
    timestamp("created_at", snapshot.created_at)?;
    timestamp("updated_at", snapshot.updated_at)
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
        json("payload", &event.payload)?;
        json("metadata", &event.metadata)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(depth: usize) -> Value {
        let mut value = json!(1);
        for _ in 0..depth {
            value = json!([value]);
        }
        value
    }

    #[test]
    fn depth_is_limited() {
        assert!(json("state", &nested(MAX_JSON_DEPTH)).is_ok());
        assert!(matches!(
            json("state", &nested(MAX_JSON_DEPTH + 1)),
            Err(InvalidInput::TooDeep {
                depth: 101,
                max: 100,
                ..
            })
        ));
        assert!(matches!(
            json("state", &nested(1_000)),
            Err(InvalidInput::TooDeep { depth: 101, .. })
        ));
        assert!(json("state", &json!({"a": [1, {"b": []}]})).is_ok());
    }

    #[test]
    fn nul_is_refused_in_strings_and_keys() {
        assert!(matches!(
            json("payload", &json!({"a": ["x\u{0}y"]})),
            Err(InvalidInput::ContainsNul { field: "payload" })
        ));
        assert!(matches!(
            json("state", &json!({"k\u{0}": 1})),
            Err(InvalidInput::ContainsNul { field: "state" })
        ));
        assert!(json("state", &json!({"k": "\u{1} é 🦀"})).is_ok());
    }

    #[test]
    fn timestamps_are_limited_to_four_digit_years() {
        use time::macros::datetime;
        assert!(timestamp("created_at", datetime!(0001-01-01 00:00 UTC)).is_ok());
        assert!(timestamp("created_at", datetime!(9999-12-31 23:59:59.999_999 UTC)).is_ok());
        assert!(timestamp("created_at", datetime!(0000-12-31 23:59 UTC)).is_err());
        assert!(timestamp("created_at", datetime!(-0100-01-01 00:00 UTC)).is_err());
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
