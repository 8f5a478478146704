//! The in-memory stores run the whole snap-testkit conformance suite.

use snap_memory::{InMemoryDatabase, InMemoryEventStore, InMemorySnapshotStore};
use snap_testkit::{EventStoreHarness, RepositoryHarness, SnapshotStoreHarness};

struct Memory;

impl SnapshotStoreHarness for Memory {
    type Store = InMemorySnapshotStore;

    async fn open(&self, keep_history: usize) -> InMemorySnapshotStore {
        InMemorySnapshotStore::new().keep_history(keep_history)
    }
}

impl EventStoreHarness for Memory {
    type Store = InMemoryEventStore;

    async fn open(&self) -> InMemoryEventStore {
        InMemoryEventStore::new()
    }
}

impl RepositoryHarness for Memory {
    type Events = InMemoryEventStore;
    type Snapshots = InMemorySnapshotStore;

    async fn open(&self, keep_history: usize) -> (InMemoryEventStore, InMemorySnapshotStore) {
        (
            InMemoryEventStore::new(),
            InMemorySnapshotStore::new().keep_history(keep_history),
        )
    }

    /// Both stores as one [`InMemoryDatabase`].
    fn native(
        &self,
        (events, snapshots): &(InMemoryEventStore, InMemorySnapshotStore),
        _keep_history: usize,
    ) -> Option<std::sync::Arc<snap_core::DynBackend>> {
        Some(std::sync::Arc::new(InMemoryDatabase::from_stores(
            events.clone(),
            snapshots.clone(),
        )))
    }
}

snap_testkit::snapshot_store_conformance!(Memory);
snap_testkit::repository_conformance!(Memory);
snap_testkit::event_store_conformance!(Memory);

/// The repository cases on [`InMemoryDatabase`] as the backend.
mod native {
    use super::*;
    snap_testkit::repository_conformance!(snap_testkit::Native(Memory));
}
