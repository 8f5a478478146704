//! What operators ask a database about its snapshots: counts and sizes per type and schema
//! version, and the aggregates whose latest snapshot is furthest behind their events. The
//! SQL backends answer these; the `snap-es` operator tool prints them.

use std::fmt::Debug;

use crate::id::AggregateId;
use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::BackendError;

/// The operator's questions to a database that holds both snapshots and events (the SQL
/// backends' `SqliteDatabase` and `PostgresDatabase`). Object safe.
#[async_trait]
pub trait SnapshotAdmin: Send + Sync + Debug {
    /// Snapshot rows (retained history included) per aggregate type and schema version, of
    /// one type or of all, ordered by type and schema version.
    async fn snapshot_stats(
        &self,
        aggregate_type: Option<&str>,
    ) -> Result<Vec<SnapshotTypeStats>, BackendError>;

    /// The `limit` aggregates, of one type or of all, with the most events after their latest
    /// snapshot, most first: where loads replay the longest.
    async fn snapshot_lag(
        &self,
        aggregate_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SnapshotLag>, BackendError>;

    /// How many snapshot rows `delete_snapshots_by_type(aggregate_type,
    /// schema_version_below)` would remove now: a prune's dry run.
    async fn count_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, BackendError>;
}

/// Snapshots of one aggregate type at one schema version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SnapshotTypeStats {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The schema version.
    pub schema_version: u32,
    /// Snapshot rows (retained history included).
    pub snapshots: u64,
    /// Total size of their states, in bytes of JSON text.
    pub total_state_bytes: u64,
    /// The largest state, in bytes of JSON text.
    pub largest_state_bytes: u64,
    /// The oldest `updated_at`: when the least recently taken snapshot was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub oldest: OffsetDateTime,
    /// The newest `updated_at`: when the most recently taken snapshot was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub newest: OffsetDateTime,
}

impl SnapshotTypeStats {
    /// Stats of one group; for backends.
    #[allow(
        clippy::too_many_arguments,
        reason = "a plain constructor for backends"
    )]
    pub fn new(
        aggregate_type: String,
        schema_version: u32,
        snapshots: u64,
        total_state_bytes: u64,
        largest_state_bytes: u64,
        oldest: OffsetDateTime,
        newest: OffsetDateTime,
    ) -> Self {
        Self {
            aggregate_type,
            schema_version,
            snapshots,
            total_state_bytes,
            largest_state_bytes,
            oldest,
            newest,
        }
    }
}

/// An aggregate and how far its latest snapshot is behind its events: what a load replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SnapshotLag {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate.
    pub aggregate_id: AggregateId,
    /// The stream's version.
    pub head: u64,
    /// The latest snapshot's version, 0 without one.
    pub snapshot_version: u64,
    /// When the latest snapshot was written, `None` without one.
    pub snapshot_updated_at: Option<OffsetDateTime>,
}

impl SnapshotLag {
    /// A lag entry; for backends.
    pub fn new(
        aggregate_type: String,
        aggregate_id: AggregateId,
        head: u64,
        snapshot_version: u64,
    ) -> Self {
        Self {
            aggregate_type,
            aggregate_id,
            head,
            snapshot_version,
            snapshot_updated_at: None,
        }
    }

    /// The entry with when its latest snapshot was written; for backends.
    #[must_use]
    pub fn with_updated_at(mut self, at: Option<OffsetDateTime>) -> Self {
        self.snapshot_updated_at = at;
        self
    }

    /// Events after the latest snapshot.
    pub fn behind(&self) -> u64 {
        self.head.saturating_sub(self.snapshot_version)
    }
}
