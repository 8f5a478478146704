//! The whole snap-testkit conformance suite against a database file, a private in-memory
//! database, and a file with every call on `spawn_blocking`.

use std::path::PathBuf;

use snap_sqlite::{Blocking, SqliteEventStore, SqliteOptions, SqliteSnapshotStore};
use snap_testkit::{EventStoreHarness, RepositoryHarness, SnapshotStoreHarness};

/// Opens a fresh database per store: a new file in a per-test directory, removed on drop, or a
/// new in-memory database.
struct Harness {
    dir: Option<PathBuf>,
    blocking: Blocking,
}

impl Harness {
    fn file(blocking: Blocking) -> Self {
        let dir = std::env::temp_dir().join(format!("snap-sqlite-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create a test directory");
        Self {
            dir: Some(dir),
            blocking,
        }
    }

    fn memory() -> Self {
        Self {
            dir: None,
            blocking: Blocking::Auto,
        }
    }

    async fn database(&self) -> snap_sqlite::SqliteDatabase {
        let options = match &self.dir {
            Some(dir) => SqliteOptions::file(dir.join(format!("{}.db", uuid::Uuid::new_v4()))),
            None => SqliteOptions::in_memory(),
        };
        options
            .blocking(self.blocking)
            .open()
            .await
            .expect("open a test database")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl SnapshotStoreHarness for Harness {
    type Store = SqliteSnapshotStore;

    async fn open(&self, keep_history: usize) -> SqliteSnapshotStore {
        self.database()
            .await
            .snapshot_store()
            .keep_history(keep_history)
    }
}

impl EventStoreHarness for Harness {
    type Store = SqliteEventStore;

    async fn open(&self) -> SqliteEventStore {
        self.database().await.event_store()
    }
}

impl RepositoryHarness for Harness {
    type Events = SqliteEventStore;
    type Snapshots = SqliteSnapshotStore;

    /// Both stores on one fresh database, as an application would use them.
    async fn open(&self, keep_history: usize) -> (SqliteEventStore, SqliteSnapshotStore) {
        let database = self.database().await;
        (
            database.event_store(),
            database.snapshot_store().keep_history(keep_history),
        )
    }

    /// The database handle itself, on the same file.
    fn native(
        &self,
        (events, _): &(SqliteEventStore, SqliteSnapshotStore),
        keep_history: usize,
    ) -> Option<std::sync::Arc<snap_core::DynBackend>> {
        Some(std::sync::Arc::new(
            events.database().clone().keep_history(keep_history),
        ))
    }
}

mod file {
    use super::*;
    snap_testkit::snapshot_store_conformance!(Harness::file(Blocking::Auto));
    snap_testkit::event_store_conformance!(Harness::file(Blocking::Auto));
    snap_testkit::repository_conformance!(Harness::file(Blocking::Auto));
}

mod in_memory {
    use super::*;
    snap_testkit::snapshot_store_conformance!(Harness::memory());
    snap_testkit::event_store_conformance!(Harness::memory());
    snap_testkit::repository_conformance!(Harness::memory());
}

mod spawn_blocking {
    use super::*;
    snap_testkit::snapshot_store_conformance!(Harness::file(Blocking::SpawnBlocking));
    snap_testkit::event_store_conformance!(Harness::file(Blocking::SpawnBlocking));
}

/// The repository cases on the database handle as the backend: one read per load, one
/// transaction per commit.
mod native {
    use super::*;

    mod file {
        use super::*;
        snap_testkit::repository_conformance!(snap_testkit::Native(Harness::file(Blocking::Auto)));
    }

    mod spawn_blocking {
        use super::*;
        snap_testkit::repository_conformance!(snap_testkit::Native(Harness::file(
            Blocking::SpawnBlocking
        )));
    }
}
