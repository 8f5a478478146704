//! Small builders the cases share; public so backend-specific tests can use them too.

use serde_json::{Value, json};
use snap_core::{NewEvent, Snapshot};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// A fixed UTC instant plus `micros` microseconds: every stored timestamp in the suite, so
/// round trips compare exactly.
pub fn at_micros(micros: i64) -> OffsetDateTime {
    datetime!(2026-03-04 05:06:07.123_456 UTC) + time::Duration::microseconds(micros)
}

/// A snapshot whose state records its own version and schema version, so a torn write (the
/// state of one save with the version of another) is visible.
pub fn snapshot(id: Uuid, aggregate_type: &str, version: u64, schema_version: u32) -> Snapshot {
    snapshot_with(
        id,
        aggregate_type,
        version,
        schema_version,
        json!({"version": version, "schema": schema_version, "note": "ok"}),
    )
}

/// A snapshot with the given state and a fixed `created_at`.
pub fn snapshot_with(
    id: Uuid,
    aggregate_type: &str,
    version: u64,
    schema_version: u32,
    state: Value,
) -> Snapshot {
    Snapshot::new(id, aggregate_type, version, state, schema_version)
        .with_created_at(at_micros(i64::try_from(version % 1_000_000).unwrap_or(0)))
}

/// `n` events numbered from `first`, each with metadata naming its batch.
pub fn events(first: u64, n: u64, batch: &str) -> Vec<NewEvent> {
    (first..first + n)
        .map(|i| {
            NewEvent::new("Incremented", json!({"n": i, "batch": batch}))
                .with_metadata(json!({"batch": batch}))
        })
        .collect()
}
