//! Small builders the cases share; public so backend-specific tests can use them too.

use std::cell::Cell;

use serde_json::{Value, json};
use snap_core::{AggregateId, NewEvent, Snapshot};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// The kind of aggregate id [`new_id`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdKind {
    /// A random UUID.
    Uuid,
    /// A string name with spaces, slashes, quotes and non-ASCII letters in it.
    Named,
}

thread_local! {
    static ID_KIND: Cell<IdKind> = const { Cell::new(IdKind::Uuid) };
}

/// Runs `f` with [`new_id`] making ids of `kind` on this thread (the one a case's future is
/// polled on by [`run`](crate::run)).
pub fn with_id_kind<R>(kind: IdKind, f: impl FnOnce() -> R) -> R {
    let before = ID_KIND.replace(kind);
    let result = f();
    ID_KIND.set(before);
    result
}

/// A fresh aggregate id of the kind the running case was given: a UUID, or a string id such
/// as `"acc 5f1c…/é 'x'"`.
pub fn new_id() -> AggregateId {
    let uuid = Uuid::new_v4();
    match ID_KIND.get() {
        IdKind::Uuid => uuid.into(),
        IdKind::Named => {
            AggregateId::parse(&format!("acc {}/é 'x'", uuid.simple())).expect("a valid string id")
        }
    }
}

/// A fixed UTC instant plus `micros` microseconds: every stored timestamp in the suite, so
/// round trips compare exactly.
pub fn at_micros(micros: i64) -> OffsetDateTime {
    datetime!(2026-03-04 05:06:07.123_456 UTC) + time::Duration::microseconds(micros)
}

/// A snapshot whose state records its own version and schema version, so a torn write (the
/// state of one save with the version of another) is visible.
pub fn snapshot(
    id: &AggregateId,
    aggregate_type: &str,
    version: u64,
    schema_version: u32,
) -> Snapshot {
    snapshot_with(
        id,
        aggregate_type,
        version,
        schema_version,
        json!({"version": version, "schema": schema_version, "note": "ok"}),
    )
}

/// A snapshot with the given state, a fixed `created_at` (so a replacement, which keeps the
/// first one's, compares equal) and an `updated_at` that follows the version.
pub fn snapshot_with(
    id: &AggregateId,
    aggregate_type: &str,
    version: u64,
    schema_version: u32,
    state: Value,
) -> Snapshot {
    Snapshot::new(id.clone(), aggregate_type, version, state, schema_version)
        .with_created_at(at_micros(0))
        .with_updated_at(at_micros(i64::try_from(version % 1_000_000).unwrap_or(0)))
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
