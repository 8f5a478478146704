//! The snapshot value and the time helpers every backend shares.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// An aggregate's state at one version, as stored by a [`SnapshotStore`](crate::SnapshotStore).
///
/// A snapshot is an immutable value: stores copy it in and out, so changing a value you saved
/// or loaded never changes the stored copy.
///
/// ```
/// use snap_core::Snapshot;
/// use serde_json::json;
/// use uuid::Uuid;
///
/// let id = Uuid::parse_str("550e8400-e29b-41d4-a716-446655440000").unwrap();
/// let snapshot = Snapshot::new(id, "Order", 100, json!({"total": 42}), 1);
/// assert_eq!(
///     snapshot.to_string(),
///     "Snapshot(Order/550e8400-e29b-41d4-a716-446655440000, v100, schema_v1)"
/// );
/// ```
///
/// The struct may gain fields, so outside this crate it is built with [`Snapshot::new`] (and
/// [`Snapshot::with_created_at`]), never as a literal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The aggregate this snapshot belongs to.
    pub aggregate_id: Uuid,
    /// The aggregate's type; ids are scoped by type. 1..=255 bytes.
    pub aggregate_type: String,
    /// The aggregate version the state reflects: the number of events applied. At least 1.
    pub version: u64,
    /// The aggregate's state as a JSON object.
    pub state: Value,
    /// The shape of `state`: bumped by the aggregate when its serialised form changes.
    pub schema_version: u32,
    /// When the snapshot was taken, kept to the microsecond in UTC on every backend.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Snapshot {
    /// A snapshot taken now. `created_at` is the current time truncated to the microsecond,
    /// the precision every backend keeps.
    pub fn new(
        aggregate_id: Uuid,
        aggregate_type: impl Into<String>,
        version: u64,
        state: Value,
        schema_version: u32,
    ) -> Self {
        Self {
            aggregate_id,
            aggregate_type: aggregate_type.into(),
            version,
            state,
            schema_version,
            created_at: now(),
        }
    }

    /// Replaces `created_at`, normalised to UTC and truncated to the microsecond.
    #[must_use]
    pub fn with_created_at(mut self, created_at: OffsetDateTime) -> Self {
        self.created_at = normalize_timestamp(created_at);
        self
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Snapshot({}/{}, v{}, schema_v{})",
            self.aggregate_type, self.aggregate_id, self.version, self.schema_version
        )
    }
}

/// The current time in UTC, truncated to the microsecond.
pub fn now() -> OffsetDateTime {
    normalize_timestamp(OffsetDateTime::now_utc())
}

/// Converts a timestamp to the form every backend stores: UTC, whole microseconds.
///
/// Stores apply this on write, so a round trip through any backend gives back exactly
/// `normalize_timestamp(t)`.
pub fn normalize_timestamp(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    let micros = t.nanosecond() / 1_000 * 1_000;
    // A whole number of microseconds below one second is always a valid nanosecond field.
    t.replace_nanosecond(micros).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn timestamps_normalise_to_utc_micros() {
        let t = datetime!(2026-01-02 03:04:05.123_456_789 +02:00);
        let n = normalize_timestamp(t);
        assert_eq!(n.offset(), UtcOffset::UTC);
        assert_eq!(n, datetime!(2026-01-02 01:04:05.123_456 UTC));
    }

    #[test]
    fn serde_round_trip() {
        let s = Snapshot::new(Uuid::new_v4(), "Order", 3, serde_json::json!({"a": 1}), 2);
        let text = serde_json::to_string(&s).unwrap();
        let back: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
    }
}
