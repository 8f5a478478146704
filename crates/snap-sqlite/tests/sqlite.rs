//! What the SQLite backend adds to the shared contract: files that survive reopening, several
//! handles on one file, corrupt rows reported as typed errors, the current-thread fallback.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use snap_core::{
    AggregateId, EventStore, EventStoreError, NewEvent, Snapshot, SnapshotError, SnapshotStore,
};
use snap_sqlite::{Durability, MIGRATIONS, SqliteDatabase, SqliteOptions};
use uuid::Uuid;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("snap-sqlite-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create a test directory");
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open the file directly")
}

fn events(n: u64, tag: &str) -> Vec<NewEvent> {
    (1..=n)
        .map(|i| NewEvent::new("Tick", json!({"i": i, "tag": tag})))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_survives_reopening() {
    let dir = TempDir::new();
    let path = dir.file("app.db");
    let ids: Vec<AggregateId> = (0..5).map(|_| AggregateId::from(Uuid::new_v4())).collect();
    let mut saved = Vec::new();
    {
        let database = SqliteDatabase::open(&path).await.unwrap();
        let (snapshots, event_store) = (database.snapshot_store(), database.event_store());
        for (n, id) in (1..).zip(&ids) {
            event_store
                .append(id, "Account", 0, events(n, "before"))
                .await
                .unwrap();
            let snapshot =
                Snapshot::new(id, "Account", n, json!({"n": n, "text": "ünïcode 🦀"}), 2);
            snapshots.save_snapshot(&snapshot).await.unwrap();
            saved.push(snapshot);
        }
        database.close();
    }
    let database = SqliteDatabase::open(&path).await.unwrap();
    assert_eq!(
        database.schema_version().await.unwrap(),
        u32::try_from(MIGRATIONS.len()).unwrap()
    );
    let (snapshots, event_store) = (database.snapshot_store(), database.event_store());
    for ((n, id), snapshot) in (1..).zip(&ids).zip(&saved) {
        assert_eq!(
            snapshots
                .get_snapshot(id, "Account")
                .await
                .unwrap()
                .as_ref(),
            Some(snapshot)
        );
        let loaded = event_store.load(id, "Account", 0, None).await.unwrap();
        assert_eq!(loaded.len() as u64, n);
        assert!(loaded.iter().all(|e| e.payload["tag"] == "before"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_see_each_others_writes() {
    let dir = TempDir::new();
    let path = dir.file("shared.db");
    let first = SqliteDatabase::open(&path).await.unwrap();
    let second = SqliteOptions::file(&path)
        .durability(Durability::Normal)
        .open()
        .await
        .unwrap();
    let id = &AggregateId::from(Uuid::new_v4());
    first
        .event_store()
        .append(id, "Account", 0, events(2, "first"))
        .await
        .unwrap();
    assert_eq!(
        second
            .event_store()
            .current_version(id, "Account")
            .await
            .unwrap(),
        2
    );
    second
        .snapshot_store()
        .save_snapshot(&Snapshot::new(id, "Account", 2, json!({}), 1))
        .await
        .unwrap();
    assert!(
        first
            .snapshot_store()
            .snapshot_exists(id, "Account")
            .await
            .unwrap()
    );
    let conflict = first
        .event_store()
        .append(id, "Account", 1, events(1, "late"))
        .await;
    assert!(matches!(
        conflict,
        Err(EventStoreError::Concurrency {
            expected: 1,
            actual: 2,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_across_handles_have_one_winner() {
    let dir = TempDir::new();
    let path = dir.file("race.db");
    let handles = [
        SqliteDatabase::open(&path).await.unwrap().event_store(),
        SqliteDatabase::open(&path).await.unwrap().event_store(),
    ];
    let handles = Arc::new(handles);
    let id = &AggregateId::from(Uuid::new_v4());
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (handles, id) = (Arc::clone(&handles), id.clone());
            tokio::spawn(async move {
                handles[t % 2]
                    .append(&id, "Account", 0, events(3, &t.to_string()))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(3) => wins += 1,
            Err(EventStoreError::Concurrency {
                expected: 0,
                actual: 3,
                ..
            }) => {}
            other => panic!("unexpected append result {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    let loaded = handles[0].load(id, "Account", 0, None).await.unwrap();
    assert_eq!(loaded.len(), 3);
    assert!(
        loaded
            .iter()
            .all(|e| e.payload["tag"] == loaded[0].payload["tag"]),
        "one writer's events only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_row_is_a_typed_error() {
    let dir = TempDir::new();
    let path = dir.file("corrupt.db");
    let store = SqliteDatabase::open(&path).await.unwrap().snapshot_store();
    let [bad_json, bad_timestamp, healthy, wrong_shape] =
        [(); 4].map(|()| AggregateId::from(Uuid::new_v4()));
    for id in [&bad_json, &bad_timestamp, &healthy, &wrong_shape] {
        store
            .save_snapshot(&Snapshot::new(id, "Order", 4, json!({"ok": true}), 1))
            .await
            .unwrap();
    }
    let connection = raw(&path);
    connection
        .execute(
            "UPDATE snapshots SET state = '{\"ok\": tru' WHERE aggregate_id = ?1",
            [bad_json.to_string()],
        )
        .unwrap();
    connection
        .execute(
            "UPDATE snapshots SET created_at = 'yesterday' WHERE aggregate_id = ?1",
            [bad_timestamp.to_string()],
        )
        .unwrap();
    connection
        .execute(
            "UPDATE snapshots SET state = '[1, 2]' WHERE aggregate_id = ?1",
            [wrong_shape.to_string()],
        )
        .unwrap();
    for id in [&bad_json, &bad_timestamp, &wrong_shape] {
        match store.get_snapshot(id, "Order").await {
            Err(SnapshotError::Deserialization {
                aggregate_id,
                aggregate_type,
                ..
            }) => {
                assert_eq!((&aggregate_id, aggregate_type.as_str()), (id, "Order"));
            }
            other => panic!("expected a Deserialization error, got {other:?}"),
        }
    }
    assert!(
        store
            .get_snapshot(&healthy, "Order")
            .await
            .unwrap()
            .is_some(),
        "other rows still load"
    );
    assert!(store.snapshot_exists(&bad_json, "Order").await.unwrap());
    assert!(
        store.delete_snapshot(&bad_json, "Order").await.unwrap(),
        "a corrupt row can be removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_event_row_is_a_typed_error() {
    let dir = TempDir::new();
    let path = dir.file("corrupt-events.db");
    let store = SqliteDatabase::open(&path).await.unwrap().event_store();
    let id = &AggregateId::from(Uuid::new_v4());
    store.append(id, "Order", 0, events(3, "x")).await.unwrap();
    raw(&path)
        .execute(
            "UPDATE events SET payload = 'not json' WHERE aggregate_id = ?1 AND version = 2",
            [id.to_string()],
        )
        .unwrap();
    match store.load(id, "Order", 0, None).await {
        Err(EventStoreError::Deserialization {
            aggregate_id,
            version,
            ..
        }) => assert_eq!((&aggregate_id, version), (id, 2)),
        other => panic!("expected a Deserialization error, got {other:?}"),
    }
    assert_eq!(
        store.load(id, "Order", 2, None).await.unwrap().len(),
        1,
        "rows after it still load"
    );
}

/// `#[tokio::test]` is a current-thread runtime, where `block_in_place` would panic: the store
/// falls back to `spawn_blocking`.
#[tokio::test]
async fn works_on_a_current_thread_runtime() {
    let database = SqliteDatabase::open_in_memory().await.unwrap();
    let id = &AggregateId::from(Uuid::new_v4());
    database
        .event_store()
        .append(id, "Account", 0, events(4, "ct"))
        .await
        .unwrap();
    database
        .snapshot_store()
        .save_snapshot(&Snapshot::new(id, "Account", 4, json!({"n": 4}), 1))
        .await
        .unwrap();
    let snapshot = database
        .snapshot_store()
        .get_snapshot(id, "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.state, json!({"n": 4}));
    assert_eq!(
        database
            .event_store()
            .load(id, "Account", 2, None)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_databases_are_private_and_shared_by_their_pool() {
    let one = SqliteDatabase::open_in_memory().await.unwrap();
    let two = SqliteDatabase::open_in_memory().await.unwrap();
    let id = &AggregateId::from(Uuid::new_v4());
    let store = one.event_store();
    // More concurrent calls than pooled connections, so several connections serve the database.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(&Uuid::from_u128(t).into(), "Account", 0, events(1, "m"))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for t in 0..8 {
        assert_eq!(
            store
                .current_version(&Uuid::from_u128(t).into(), "Account")
                .await
                .unwrap(),
            1
        );
    }
    assert_eq!(
        two.event_store()
            .current_version(&Uuid::from_u128(0).into(), "Account")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        one.snapshot_store()
            .get_snapshot(id, "Account")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent() {
    let dir = TempDir::new();
    let path = dir.file("migrate.db");
    let database = SqliteOptions::file(&path)
        .migrate(false)
        .open()
        .await
        .unwrap();
    assert_eq!(database.schema_version().await.unwrap(), 0);
    database.migrate().await.unwrap();
    database.migrate().await.unwrap();
    assert_eq!(
        database.schema_version().await.unwrap(),
        u32::try_from(MIGRATIONS.len()).unwrap()
    );
    let again = SqliteDatabase::open(&path).await.unwrap();
    assert_eq!(
        again.schema_version().await.unwrap(),
        u32::try_from(MIGRATIONS.len()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_database_fails_with_a_backend_error() {
    let database = SqliteDatabase::open_in_memory().await.unwrap();
    database.close();
    let result = database
        .snapshot_store()
        .get_snapshot(&Uuid::new_v4().into(), "Account")
        .await;
    assert!(
        matches!(result, Err(SnapshotError::Backend(_))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_queries_report_stats_lag_and_prune_counts() {
    let dir = TempDir::new();
    let database = SqliteDatabase::open(dir.file("admin.db")).await.unwrap();
    snap_testkit::admin::admin_reports_stats_lag_and_prune_counts(
        &database,
        &database.snapshot_store(),
        &database.event_store(),
    )
    .await;
}
