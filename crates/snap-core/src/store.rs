//! The [`SnapshotStore`] trait.

use std::fmt::Debug;
use std::sync::Arc;

use crate::id::AggregateId;
use async_trait::async_trait;

use crate::error::SnapshotError;
use crate::snapshot::Snapshot;

/// Where snapshots live. Object safe: use it as `Arc<dyn SnapshotStore>` when the backend is
/// chosen at run time.
///
/// Semantics every backend shares (checked by `snap-testkit`):
/// 1. [`save_snapshot`](Self::save_snapshot) is an upsert keyed by (aggregate type, aggregate
///    id) that never moves backwards: a version lower than the stored latest is a no-op that
///    returns `Ok`; an equal version replaces (a schema bump re-snapshots at the same
///    version). This holds under concurrent saves.
/// 2. [`get_snapshot`](Self::get_snapshot) returns the latest snapshot, exactly as saved
///    (timestamps normalised to UTC microseconds, see
///    [`normalize_timestamp`](crate::normalize_timestamp)), except that a snapshot replacing
///    another keeps the replaced one's `created_at` (when the aggregate was first
///    snapshotted); its `updated_at` is its own.
/// 3. A store keeps the latest snapshot per aggregate by default; backends offer
///    `keep_history(k)` to keep the k highest versions, which
///    [`get_snapshot_at`](Self::get_snapshot_at) reads.
/// 4. Ids are scoped by type: one id under two types is two aggregates.
/// 5. Bad input is a [`SnapshotError::InvalidInput`] and nothing is written; see
///    [`validate`](crate::validate).
#[async_trait]
pub trait SnapshotStore: Send + Sync + Debug + 'static {
    /// Saves a snapshot unless a higher version is already stored.
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), SnapshotError>;

    /// The latest snapshot of the aggregate, or `None`.
    async fn get_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<Option<Snapshot>, SnapshotError>;

    /// The highest retained snapshot with `version <= max_version`, or `None`.
    async fn get_snapshot_at(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        max_version: u64,
    ) -> Result<Option<Snapshot>, SnapshotError>;

    /// Removes every snapshot of the aggregate; returns whether any existed.
    async fn delete_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError>;

    /// Whether the aggregate has a snapshot.
    async fn snapshot_exists(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError>;

    /// Removes the snapshots of `aggregate_type` whose schema version is below
    /// `schema_version_below` (strictly), or all of them with `None`. Returns how many
    /// snapshots were removed (with the default retention, one per aggregate). Other types are
    /// untouched.
    async fn delete_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, SnapshotError>;
}

/// A snapshot store chosen at run time.
pub type DynSnapshotStore = dyn SnapshotStore;

macro_rules! forward_snapshot_store {
    ($($wrapper:ident),*) => {$(
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: SnapshotStore + ?Sized> SnapshotStore for $wrapper<T> {
            async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
                (**self).save_snapshot(snapshot).await
            }

            async fn get_snapshot(
                &self,
                aggregate_id: &AggregateId,
                aggregate_type: &str,
            ) -> Result<Option<Snapshot>, SnapshotError> {
                (**self).get_snapshot(aggregate_id, aggregate_type).await
            }

            async fn get_snapshot_at(
                &self,
                aggregate_id: &AggregateId,
                aggregate_type: &str,
                max_version: u64,
            ) -> Result<Option<Snapshot>, SnapshotError> {
                (**self).get_snapshot_at(aggregate_id, aggregate_type, max_version).await
            }

            async fn delete_snapshot(
                &self,
                aggregate_id: &AggregateId,
                aggregate_type: &str,
            ) -> Result<bool, SnapshotError> {
                (**self).delete_snapshot(aggregate_id, aggregate_type).await
            }

            async fn snapshot_exists(
                &self,
                aggregate_id: &AggregateId,
                aggregate_type: &str,
            ) -> Result<bool, SnapshotError> {
                (**self).snapshot_exists(aggregate_id, aggregate_type).await
            }

            async fn delete_snapshots_by_type(
                &self,
                aggregate_type: &str,
                schema_version_below: Option<u32>,
            ) -> Result<u64, SnapshotError> {
                (**self).delete_snapshots_by_type(aggregate_type, schema_version_below).await
            }
        }
    )*};
}

forward_snapshot_store!(Arc, Box);
