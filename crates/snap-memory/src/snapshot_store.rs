use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use snap_core::{
    AggregateId, Snapshot, SnapshotError, SnapshotStore, async_trait, normalize_timestamp, validate,
};

/// Snapshots of one aggregate, by version.
type History = BTreeMap<u64, Snapshot>;
/// Aggregate type -> aggregate id -> retained snapshots.
pub(crate) type Table = HashMap<String, HashMap<AggregateId, History>>;

/// Saves a checked snapshot unless a higher version is stored, keeping `keep` versions.
pub(crate) fn save_into(table: &mut Table, snapshot: &Snapshot, keep: usize) {
    let mut stored = snapshot.clone();
    stored.created_at = normalize_timestamp(stored.created_at);
    stored.updated_at = normalize_timestamp(stored.updated_at);
    let history = table
        .entry(stored.aggregate_type.clone())
        .or_default()
        .entry(stored.aggregate_id.clone())
        .or_default();
    if let Some((&latest, kept)) = history.last_key_value() {
        if latest > stored.version {
            return;
        }
        stored.created_at = kept.created_at;
    }
    history.insert(stored.version, stored);
    while history.len() > keep {
        history.pop_first();
    }
}

/// The highest retained snapshot at or below `max_version`.
pub(crate) fn latest_at(
    table: &Table,
    aggregate_id: &AggregateId,
    aggregate_type: &str,
    max_version: u64,
) -> Option<Snapshot> {
    table
        .get(aggregate_type)
        .and_then(|ids| ids.get(aggregate_id))
        .and_then(|h| h.range(..=max_version).next_back())
        .map(|(_, s)| s.clone())
}

/// A [`SnapshotStore`] in process memory.
///
/// Keeps the latest snapshot per aggregate unless built with
/// [`keep_history`](Self::keep_history). Clones share the same data.
#[derive(Clone)]
pub struct InMemorySnapshotStore {
    table: Arc<Mutex<Table>>,
    keep: usize,
}

impl Default for InMemorySnapshotStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemorySnapshotStore {
    /// An empty store that keeps the latest snapshot per aggregate.
    pub fn new() -> Self {
        Self {
            table: Arc::default(),
            keep: 1,
        }
    }

    /// Keeps the `k` highest versions per aggregate, for
    /// [`get_snapshot_at`](SnapshotStore::get_snapshot_at). The latest is always kept, so `0`
    /// counts as `1`.
    #[must_use]
    pub fn keep_history(mut self, k: usize) -> Self {
        self.keep = k.max(1);
        self
    }

    /// How many versions per aggregate this store keeps.
    pub fn retained_versions(&self) -> usize {
        self.keep
    }

    /// Removes every snapshot.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many snapshots are stored, retained history included.
    pub fn snapshot_count(&self) -> usize {
        self.lock()
            .values()
            .flat_map(HashMap::values)
            .map(BTreeMap::len)
            .sum()
    }

    /// Every operation is a short critical section with no `.await` inside, and none can leave
    /// the table half-changed, so a poisoned lock still guards consistent data.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read<T>(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        f: impl FnOnce(Option<&History>) -> T,
    ) -> Result<T, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let table = self.lock();
        Ok(f(table
            .get(aggregate_type)
            .and_then(|ids| ids.get(aggregate_id))))
    }
}

impl fmt::Debug for InMemorySnapshotStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemorySnapshotStore")
            .field("snapshots", &self.snapshot_count())
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SnapshotStore for InMemorySnapshotStore {
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        validate::snapshot(snapshot)?;
        save_into(&mut self.lock(), snapshot, self.keep);
        Ok(())
    }

    async fn get_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.read(aggregate_id, aggregate_type, |history| {
            history
                .and_then(|h| h.last_key_value())
                .map(|(_, s)| s.clone())
        })
    }

    async fn get_snapshot_at(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        max_version: u64,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.read(aggregate_id, aggregate_type, |history| {
            history
                .and_then(|h| h.range(..=max_version).next_back())
                .map(|(_, s)| s.clone())
        })
    }

    async fn delete_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let mut table = self.lock();
        Ok(table
            .get_mut(aggregate_type)
            .and_then(|ids| ids.remove(aggregate_id))
            .is_some())
    }

    async fn snapshot_exists(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        self.read(aggregate_id, aggregate_type, |history| history.is_some())
    }

    async fn delete_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let mut table = self.lock();
        let Some(ids) = table.get_mut(aggregate_type) else {
            return Ok(0);
        };
        let mut removed = 0u64;
        ids.retain(|_, history| {
            let before = history.len();
            history
                .retain(|_, s| schema_version_below.is_some_and(|below| s.schema_version >= below));
            removed += (before - history.len()) as u64;
            !history.is_empty()
        });
        Ok(removed)
    }
}
