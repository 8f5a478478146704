//! The conformance suite through the facade, with the stores behind `Arc<dyn ...>`: what an
//! application that picks its backend at run time holds. This also covers the forwarding
//! impls of the store traits for `Arc`.

use std::sync::Arc;

use snap_es::memory::{InMemoryEventStore, InMemorySnapshotStore};
use snap_es::{DynEventStore, DynSnapshotStore};
use snap_testkit::{EventStoreHarness, RepositoryHarness, SnapshotStoreHarness};

struct DynMemory;

impl SnapshotStoreHarness for DynMemory {
    type Store = Arc<DynSnapshotStore>;

    async fn open(&self, keep_history: usize) -> Arc<DynSnapshotStore> {
        Arc::new(InMemorySnapshotStore::new().keep_history(keep_history))
    }
}

impl EventStoreHarness for DynMemory {
    type Store = Arc<DynEventStore>;

    async fn open(&self) -> Arc<DynEventStore> {
        Arc::new(InMemoryEventStore::new())
    }
}

snap_testkit::snapshot_store_conformance!(DynMemory);
snap_testkit::event_store_conformance!(DynMemory);

/// The repository cases through the facade, on stores chosen at run time: an in-memory
/// SQLite database behind `Arc<dyn ...>`.
struct DynSqlite;

impl RepositoryHarness for DynSqlite {
    type Events = Arc<DynEventStore>;
    type Snapshots = Arc<DynSnapshotStore>;

    async fn open(&self, keep_history: usize) -> (Arc<DynEventStore>, Arc<DynSnapshotStore>) {
        let database = snap_es::sqlite::SqliteDatabase::open_in_memory()
            .await
            .expect("an in-memory SQLite database");
        (
            Arc::new(database.event_store()),
            Arc::new(database.snapshot_store().keep_history(keep_history)),
        )
    }
}

mod repository {
    use super::*;
    snap_testkit::repository_conformance!(DynSqlite);
}
