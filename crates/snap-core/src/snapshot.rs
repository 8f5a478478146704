//! The snapshot value and the time helpers every backend shares.

use std::fmt;

use crate::id::AggregateId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};

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
#[serde(from = "Wire")]
#[non_exhaustive]
pub struct Snapshot {
    /// The aggregate this snapshot belongs to.
    pub aggregate_id: AggregateId,
    /// The aggregate's type; ids are scoped by type. 1..=255 bytes.
    pub aggregate_type: String,
    /// The aggregate version the state reflects: the number of events applied. At least 1.
    pub version: u64,
    /// The aggregate's state as a JSON object.
    pub state: Value,
    /// The shape of `state`: bumped by the aggregate when its serialised form changes.
    pub schema_version: u32,
    /// When the aggregate's snapshot was first stored: a store keeps the `created_at` of the
    /// snapshot it replaces, so this stays put while the aggregate is re-snapshotted (it starts
    /// again after [`delete_snapshot`](crate::SnapshotStore::delete_snapshot)). Kept to the
    /// microsecond in UTC on every backend.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When this snapshot was taken: the last time the aggregate's snapshot was replaced.
    /// Kept to the microsecond in UTC on every backend. A value serialised before this field
    /// existed reads back with `updated_at` equal to `created_at`.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A snapshot as serialised, `updated_at` optional.
#[derive(Deserialize)]
struct Wire {
    aggregate_id: AggregateId,
    aggregate_type: String,
    version: u64,
    state: Value,
    schema_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    updated_at: Option<OffsetDateTime>,
}

impl From<Wire> for Snapshot {
    fn from(w: Wire) -> Self {
        Self {
            aggregate_id: w.aggregate_id,
            aggregate_type: w.aggregate_type,
            version: w.version,
            state: w.state,
            schema_version: w.schema_version,
            created_at: w.created_at,
            updated_at: w.updated_at.unwrap_or(w.created_at),
        }
    }
}

impl Snapshot {
    /// A snapshot taken now. `created_at` and `updated_at` are the current time truncated to
    /// the microsecond, the precision every backend keeps.
    pub fn new(
        aggregate_id: impl Into<AggregateId>,
        aggregate_type: impl Into<String>,
        version: u64,
        state: Value,
        schema_version: u32,
    ) -> Self {
        let at = now();
        Self {
            aggregate_id: aggregate_id.into(),
            aggregate_type: aggregate_type.into(),
            version,
            state,
            schema_version,
            created_at: at,
            updated_at: at,
        }
    }

    /// Sets both `created_at` and `updated_at` (a snapshot taken at that time), normalised to
    /// UTC and truncated to the microsecond. A store still keeps the `created_at` of a
    /// snapshot it replaces.
    #[must_use]
    pub fn with_created_at(mut self, created_at: OffsetDateTime) -> Self {
        self.created_at = normalize_timestamp(created_at);
        self.updated_at = self.created_at;
        self
    }

    /// Sets `updated_at` alone, normalised as [`with_created_at`](Self::with_created_at)
    /// does: for stores and tools that copy snapshots with both times.
    #[must_use]
    pub fn with_updated_at(mut self, updated_at: OffsetDateTime) -> Self {
        self.updated_at = normalize_timestamp(updated_at);
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

    use uuid::Uuid;

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

    #[test]
    fn a_value_without_updated_at_reads_it_as_created_at() {
        let s = Snapshot::new(Uuid::new_v4(), "Order", 3, serde_json::json!({"a": 1}), 2)
            .with_created_at(time::macros::datetime!(2026-01-02 03:04:05 UTC))
            .with_updated_at(time::macros::datetime!(2026-02-02 03:04:05 UTC));
        let mut value = serde_json::to_value(&s).unwrap();
        value.as_object_mut().unwrap().remove("updated_at");
        let back: Snapshot = serde_json::from_value(value).unwrap();
        assert_eq!(back.updated_at, s.created_at);
    }
}
