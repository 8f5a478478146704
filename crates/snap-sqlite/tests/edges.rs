//! Where SQLite once broke a stated guarantee: `":memory:"` as a path, a streamed load driven
//! by an executor other than tokio, and a sync save whose snapshot database is locked.

use std::time::{Duration, Instant};

use serde_json::json;
use snap_core::{AggregateId, EventStore, NewEvent, Snapshot, SnapshotStore};
use snap_sqlite::{SqliteDatabase, SqliteEventStore, SqliteOptions, SqliteSnapshotStore};
use uuid::Uuid;

fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("snap-sqlite-edges-{}-{name}", Uuid::new_v4()))
}

/// `":memory:"`, as an eventsource-py user types it, is one in-memory database per handle,
/// shared by every pooled connection, for the store constructors and the database handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_path_is_one_in_memory_database_per_handle() {
    let snapshots = SqliteSnapshotStore::open(":memory:").await.unwrap();
    let id = &AggregateId::from(Uuid::new_v4());
    snapshots
        .save_snapshot(&Snapshot::new(id, "Account", 3, json!({"n": 3}), 1))
        .await
        .unwrap();
    // More concurrent reads than pooled connections: every connection sees the one database.
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let (snapshots, id) = (snapshots.clone(), id.clone());
            tokio::spawn(async move { snapshots.get_snapshot(&id, "Account").await })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap().unwrap().map(|s| s.version), Some(3));
    }
    let database = SqliteDatabase::open(":memory:").await.unwrap();
    let events = database.event_store();
    events
        .append(id, "Account", 0, vec![NewEvent::new("Opened", json!({}))])
        .await
        .unwrap();
    assert_eq!(events.current_version(id, "Account").await.unwrap(), 1);
    let other = SqliteEventStore::open(":memory:").await.unwrap();
    assert_eq!(other.current_version(id, "Account").await.unwrap(), 0);
    assert_eq!(
        database
            .snapshot_store()
            .get_snapshot(id, "Account")
            .await
            .unwrap(),
        None,
        "each handle has its own database"
    );
}

/// An empty path would give every pooled connection its own temporary database: refused with
/// a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_path_is_a_typed_error() {
    let error = SqliteDatabase::open("").await.unwrap_err();
    assert!(error.to_string().contains("empty path"), "{error}");
}

/// A load of more events than the first page plus the reader's look-ahead, driven by a plain
/// executor with no tokio runtime: it completes with every event in order.
#[test]
fn a_streamed_load_completes_on_another_executor() {
    const EVENTS: u64 = 6_500;
    let path = temp_file("executor.db");
    futures_executor::block_on(async {
        let store = SqliteEventStore::open(&path).await.unwrap();
        let id = &AggregateId::from(Uuid::new_v4());
        let mut version = 0;
        while version < EVENTS {
            let batch: Vec<NewEvent> = (version + 1..=(version + 1_000).min(EVENTS))
                .map(|i| NewEvent::new("Tick", json!({"i": i})))
                .collect();
            version = store.append(id, "Ticker", version, batch).await.unwrap();
        }
        let loaded = store.load(id, "Ticker", 0, None).await.unwrap();
        let versions: Vec<u64> = loaded.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=EVENTS).collect::<Vec<_>>());
        let tail = store.load(id, "Ticker", 100, Some(6_000)).await.unwrap();
        assert_eq!(tail.len(), 5_900);
    });
    let _ = std::fs::remove_file(&path);
}

/// A sync save whose snapshot database is locked by another connection returns within the
/// repository's `snapshot_timeout`, not after SQLite's busy timeout, and its events are
/// committed; the snapshot write is counted as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_timeout_bounds_a_sync_save_on_a_locked_snapshot_database() {
    use snap_repo::{AggregateRepository, StorePair};
    use snap_strategy::{SnapshotMode, Threshold};
    use snap_testkit::accounts::{AccountEvent, AccountV1};

    let (events_path, snapshots_path) = (temp_file("events.db"), temp_file("snapshots.db"));
    let events = SqliteEventStore::open(&events_path).await.unwrap();
    let snapshots = SqliteOptions::file(&snapshots_path)
        .busy_timeout(Duration::from_secs(30))
        .open()
        .await
        .unwrap()
        .snapshot_store();
    let repo = AggregateRepository::<AccountV1>::builder(StorePair::new(
        events.clone(),
        snapshots.clone(),
    ))
    .strategy(Threshold(1))
    .mode(SnapshotMode::Sync)
    .snapshot_timeout(Duration::from_millis(200))
    .build()
    .unwrap();
    let holder = rusqlite::Connection::open(&snapshots_path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let id = &AggregateId::from(Uuid::new_v4());
    let mut root = repo.create_new(id);
    root.record(AccountEvent::Opened {
        owner: "ada".into(),
    });
    let started = Instant::now();
    assert_eq!(repo.save(&mut root).await.unwrap(), 1);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the save waited {took:?} for a locked snapshot database"
    );
    assert_eq!(events.current_version(id, "Account").await.unwrap(), 1);
    assert_eq!(repo.stats().snapshot_failures, 1, "{:?}", repo.stats());

    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    // The abandoned write may still land once the lock is free; loads equal a replay either way.
    let loaded = repo.load(id).await.unwrap();
    assert_eq!(loaded.state().owner, "ada");
    for path in [events_path, snapshots_path] {
        let _ = std::fs::remove_file(&path);
    }
}

/// A sync save on the database handle whose snapshot insert fails inside the commit's
/// transaction (here a trigger refuses it) still commits its events: the snapshot part rolls
/// back to its savepoint, the failure is counted, and a load equals a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_fails_inside_the_commit_keeps_the_events() {
    use snap_repo::{AggregateRepository, StorePair};
    use snap_strategy::{SnapshotMode, Threshold};
    use snap_testkit::accounts::{AccountEvent, AccountV1};

    let path = temp_file("commit.db");
    let database = SqliteDatabase::open(&path).await.unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            // The write is an insert or, replacing an older snapshot, an update in place.
            "CREATE TRIGGER refuse_snapshots BEFORE INSERT ON snapshots
             WHEN NEW.version > 1
             BEGIN SELECT RAISE(ABORT, 'snapshots refused'); END;
             CREATE TRIGGER refuse_replacements BEFORE UPDATE ON snapshots
             WHEN NEW.version > 1
             BEGIN SELECT RAISE(ABORT, 'snapshots refused'); END;",
        )
        .unwrap();
    let repo = AggregateRepository::<AccountV1>::builder(database.clone())
        .strategy(Threshold(1))
        .mode(SnapshotMode::Sync)
        .build()
        .unwrap();
    let id = &AggregateId::from(Uuid::new_v4());
    let mut root = repo.create_new(id);
    root.record(AccountEvent::Opened {
        owner: "ada".into(),
    });
    assert_eq!(repo.save(&mut root).await.unwrap(), 1);
    root.record(AccountEvent::Deposited { amount: 7 });
    assert_eq!(repo.save(&mut root).await.unwrap(), 2, "the save succeeds");

    let stats = repo.stats();
    assert_eq!((stats.snapshots_written, stats.snapshot_failures), (1, 1));
    let events = database.event_store();
    assert_eq!(events.current_version(id, "Account").await.unwrap(), 2);
    let snapshot = database
        .snapshot_store()
        .get_snapshot(id, "Account")
        .await
        .unwrap();
    assert_eq!(
        snapshot.map(|s| s.version),
        Some(1),
        "the old snapshot stays"
    );
    let loaded = repo.load(id).await.unwrap();
    let replayed = AggregateRepository::<AccountV1>::builder(StorePair::events_only(events))
        .build()
        .unwrap()
        .load(id)
        .await
        .unwrap();
    assert_eq!((loaded.version(), loaded.state()), (2, replayed.state()));
    let _ = std::fs::remove_file(&path);
}
