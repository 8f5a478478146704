//! What the PostgreSQL backend adds to the shared contract: concurrent savers and appenders
//! on a real server, connections killed under the pool, migrations run twice and at once,
//! schemas as tenants, rows of the wrong shape.

mod support;

use std::sync::Arc;

use serde_json::json;
use snap_core::{
    AggregateId, EventStore, EventStoreError, InvalidInput, NewEvent, Snapshot, SnapshotError,
    SnapshotStore,
};
use snap_postgres::{MIGRATIONS, validate_schema_name};
use support::PgHarness;
use uuid::Uuid;

fn snapshot(id: &AggregateId, version: u64) -> Snapshot {
    Snapshot::new(id, "Account", version, json!({"version": version}), 1)
}

/// The application name of the pool whose connections the recovery test kills; no other
/// test uses it, so the kills never reach a test running alongside.
const DOOMED_APPLICATION: &str = "snap-es-test-killed";

/// Ends every server connection of the recovery test's pool, as an operator or a failover
/// would.
async fn kill_pool_connections() -> i64 {
    kill_connections_of(DOOMED_APPLICATION).await
}

/// Ends every server connection opened with this application name.
async fn kill_connections_of(application: &str) -> i64 {
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&support::database_url())
        .await
        .expect("an admin connection");
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = $1 AND pid <> pg_backend_pid()) AS killed",
    )
    .bind(application)
    .fetch_one(&mut admin)
    .await
    .expect("pg_terminate_backend")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_savers_with_random_versions_keep_the_maximum() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    for keep in [1, 3] {
        let store = Arc::new(harness.database().await.snapshot_store().keep_history(keep));
        let id = &AggregateId::from(Uuid::new_v4());
        // Random versions with repeats, from a fixed seed so a failure can be replayed.
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ keep as u64;
        let versions: Vec<u64> = (0..16)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                1 + seed % 40
            })
            .collect();
        let tasks: Vec<_> = versions
            .iter()
            .map(|&v| {
                let (store, id) = (Arc::clone(&store), id.clone());
                tokio::spawn(async move { store.save_snapshot(&snapshot(&id, v)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let max = *versions.iter().max().unwrap();
        let latest = store.get_snapshot(id, "Account").await.unwrap().unwrap();
        assert_eq!(
            (latest.version, latest.state["version"].as_u64()),
            (max, Some(max)),
            "keep {keep}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_replaced_by_the_pool() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let database = harness
        .options()
        .application_name(DOOMED_APPLICATION)
        .max_connections(3)
        .connect()
        .await
        .unwrap();
    let (snapshots, events) = (database.snapshot_store(), database.event_store());
    let id = &AggregateId::from(Uuid::new_v4());
    events
        .append(id, "Account", 0, vec![NewEvent::new("Opened", json!({}))])
        .await
        .unwrap();
    snapshots.save_snapshot(&snapshot(id, 1)).await.unwrap();

    assert!(
        kill_pool_connections().await >= 1,
        "the pool had connections to kill"
    );
    assert_eq!(
        snapshots
            .get_snapshot(id, "Account")
            .await
            .unwrap()
            .map(|s| s.version),
        Some(1)
    );

    kill_pool_connections().await;
    assert_eq!(
        events
            .append(
                id,
                "Account",
                1,
                vec![NewEvent::new("Deposited", json!({}))]
            )
            .await
            .unwrap(),
        2
    );

    kill_pool_connections().await;
    snapshots.save_snapshot(&snapshot(id, 2)).await.unwrap();
    assert_eq!(
        events.load(id, "Account", 0, None).await.unwrap().len(),
        2,
        "nothing lost, nothing doubled"
    );
    assert_eq!(
        snapshots
            .get_snapshot(id, "Account")
            .await
            .unwrap()
            .map(|s| s.version),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_twice_and_from_two_tasks_at_once() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let database = harness.options().migrate(false).connect().await.unwrap();
    assert_eq!(database.schema_version().await.unwrap(), 0);
    let (a, b) = (database.clone(), database.clone());
    let (first, second) = tokio::join!(
        tokio::spawn(async move { a.migrate().await }),
        tokio::spawn(async move { b.migrate().await })
    );
    first.unwrap().unwrap();
    second.unwrap().unwrap();
    database.migrate().await.unwrap();
    assert_eq!(
        database.schema_version().await.unwrap(),
        i64::try_from(MIGRATIONS.len()).unwrap()
    );
    let id = &AggregateId::from(Uuid::new_v4());
    database
        .snapshot_store()
        .save_snapshot(&snapshot(id, 1))
        .await
        .unwrap();
    assert!(
        database
            .snapshot_store()
            .snapshot_exists(id, "Account")
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_keep_tenants_apart() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let (one, two) = (harness.database().await, harness.database().await);
    let id = &AggregateId::from(Uuid::new_v4());
    one.snapshot_store()
        .save_snapshot(&snapshot(id, 3))
        .await
        .unwrap();
    one.event_store()
        .append(id, "Account", 0, vec![NewEvent::new("Opened", json!({}))])
        .await
        .unwrap();
    assert!(
        !two.snapshot_store()
            .snapshot_exists(id, "Account")
            .await
            .unwrap()
    );
    assert_eq!(
        two.event_store()
            .current_version(id, "Account")
            .await
            .unwrap(),
        0
    );
}

#[test]
fn schema_names_are_checked() {
    assert!(validate_schema_name("tenant_42").is_ok());
    assert!(validate_schema_name(&"a".repeat(63)).is_ok());
    for bad in [
        "",
        "Tenant",
        "1tenant",
        "a-b",
        "x\"; DROP SCHEMA public; --",
        "ümlaut",
        &"a".repeat(64),
    ] {
        assert!(
            matches!(
                validate_schema_name(bad),
                Err(InvalidInput::Empty { .. }
                    | InvalidInput::TooLong { .. }
                    | InvalidInput::InvalidIdentifier { .. })
            ),
            "{bad:?} must be refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_of_the_wrong_shape_is_a_typed_error() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let database = harness.database().await;
    let store = database.snapshot_store();
    let (array, healthy) = (
        &AggregateId::from(Uuid::new_v4()),
        &AggregateId::from(Uuid::new_v4()),
    );
    for id in [array, healthy] {
        store.save_snapshot(&snapshot(id, 2)).await.unwrap();
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE \"{}\".snapshots SET state = '[1, 2]'::jsonb WHERE aggregate_id = $1",
        database.schema()
    )))
    .bind(array.to_string())
    .execute(database.pool())
    .await
    .unwrap();
    match store.get_snapshot(array, "Account").await {
        Err(SnapshotError::Deserialization { aggregate_id, .. }) => {
            assert_eq!(&aggregate_id, array);
        }
        other => panic!("expected a Deserialization error, got {other:?}"),
    }
    assert!(
        store
            .get_snapshot(healthy, "Account")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_events_append_in_one_statement() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let database = harness.database().await;
    let events = database.event_store();
    let id = &AggregateId::from(Uuid::new_v4());
    let batch: Vec<NewEvent> = (0..100)
        .map(|i| NewEvent::new("Tick", json!({"i": i})))
        .collect();
    assert_eq!(events.append(id, "Account", 0, batch).await.unwrap(), 100);
    let conflict = events
        .append(id, "Account", 99, vec![NewEvent::new("Late", json!({}))])
        .await;
    assert!(matches!(
        conflict,
        Err(EventStoreError::Concurrency {
            expected: 99,
            actual: 100,
            ..
        })
    ));
    let loaded = events.load(id, "Account", 0, None).await.unwrap();
    assert_eq!(
        loaded
            .iter()
            .map(|e| e.payload["i"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
}

/// Connections are terminated over and over while four accounts are saved through a
/// repository that snapshots every third version: every save reported as committed is
/// stored, no append is half-written, the pool recovers, and every account loads to the state
/// of a full replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_during_saves_lose_nothing() {
    saves_survive_terminated_connections("snap-es-test-killed-writer", false).await;
}

/// The same on the database handle as the backend: the snapshot rides in the append's
/// statement, so a retried commit meets its own events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_during_native_commits_lose_nothing() {
    saves_survive_terminated_connections("snap-es-test-killed-committer", true).await;
}

#[allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "a test helper: a failed call fails the test, and the run says what it did"
)]
async fn saves_survive_terminated_connections(application: &'static str, native: bool) {
    use snap_repo::{AggregateRepository, RepositoryError, StorePair};
    use snap_strategy::{SnapshotMode, Threshold};
    use snap_testkit::accounts::{AccountEvent, AccountV1};

    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let database = harness
        .options()
        .application_name(application)
        .max_connections(3)
        .connect()
        .await
        .unwrap();
    let backend: Arc<snap_core::DynBackend> = if native {
        Arc::new(database.clone())
    } else {
        Arc::new(StorePair::new(
            database.event_store(),
            database.snapshot_store(),
        ))
    };
    let repo = AggregateRepository::<AccountV1>::builder(backend)
        .strategy(Threshold(3))
        .mode(SnapshotMode::Sync)
        .build()
        .unwrap();
    let ids: Vec<AggregateId> = (0..4).map(|_| AggregateId::from(Uuid::new_v4())).collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (repo, ids, done) = (repo.clone(), ids.clone(), Arc::clone(&done));
        async move {
            let mut committed = vec![0_u64; ids.len()];
            let (mut saves, mut failures) = (0_u64, 0_u64);
            let mut round = 0_u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                round += 1;
                let slot = usize::try_from(round % 4).unwrap();
                let id = &ids[slot];
                let mut root = match repo.load(id).await {
                    Ok(root) => root,
                    Err(RepositoryError::AggregateNotFound { .. }) => {
                        let mut root = repo.create_new(id);
                        root.record(AccountEvent::Opened { owner: "pg".into() });
                        root
                    }
                    Err(_) => {
                        failures += 1;
                        continue;
                    }
                };
                let amount = i64::try_from(round % 1_000).unwrap() + 1;
                for _ in 0..=(amount % 5) {
                    root.record(AccountEvent::Deposited { amount });
                }
                match repo.save(&mut root).await {
                    Ok(version) => {
                        committed[slot] = committed[slot].max(version);
                        saves += 1;
                    }
                    // A lost connection the retries could not hide: the save may or may not
                    // have landed, so it is not counted as committed.
                    Err(_) => failures += 1,
                }
            }
            (committed, saves, failures)
        }
    });
    let mut killed = 0;
    for _ in 0..30 * snap_testkit::soak_factor() {
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        killed += kill_connections_of(application).await;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (committed, saves, failures) = writer.await.unwrap();
    eprintln!("{killed} connections killed during {saves} saves ({failures} failed)");
    assert!(killed >= 10, "connections were killed mid-run");
    assert!(saves >= 10, "the writer kept going: {saves} saves");

    assert_streams_whole(&database, &repo, &ids, &committed).await;
}

/// Every save reported as committed is stored, no append is half-written, and every account
/// loads to the state of a full replay.
#[allow(
    clippy::unwrap_used,
    reason = "a test helper: a failed call fails the test"
)]
async fn assert_streams_whole(
    database: &snap_postgres::PostgresDatabase,
    repo: &snap_repo::AggregateRepository<snap_testkit::accounts::AccountV1>,
    ids: &[AggregateId],
    committed: &[u64],
) {
    use snap_repo::{AggregateRepository, StorePair};
    use snap_testkit::accounts::AccountV1;

    let events = database.event_store();
    let replay =
        AggregateRepository::<AccountV1>::builder(StorePair::events_only(database.event_store()))
            .build()
            .unwrap();
    for (slot, id) in ids.iter().enumerate() {
        let head = events.current_version(id, "Account").await.unwrap();
        assert!(
            head >= committed[slot],
            "{id}: reported {}, stored {head}",
            committed[slot]
        );
        let stored = events.load(id, "Account", 0, None).await.unwrap();
        let versions: Vec<u64> = stored.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=head).collect::<Vec<_>>(), "{id}: a gap");
        let amounts: Vec<i64> = stored
            .iter()
            .filter_map(|e| e.payload["Deposited"]["amount"].as_i64())
            .collect();
        for run in amounts.chunk_by(|a, b| a == b) {
            let size = usize::try_from(run[0] % 5).unwrap() + 1;
            assert_eq!(run.len() % size, 0, "{id}: a torn batch of {}", run[0]);
        }
        let loaded = repo.load(id).await.unwrap();
        assert_eq!(loaded.version(), head);
        assert_eq!(loaded.state(), replay.load(id).await.unwrap().state());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_queries_report_stats_lag_and_prune_counts() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let database = harness.database().await;
    snap_testkit::admin::admin_reports_stats_lag_and_prune_counts(
        &database,
        &database.snapshot_store(),
        &database.event_store(),
    )
    .await;
}

/// A sync save on the database handle whose snapshot write fails inside the commit (a trigger
/// refuses it) still commits its events, with and without kept history (one statement, and
/// one transaction with a savepoint): the save succeeds, the failure is counted, the older
/// snapshot stays, and a load equals a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_fails_inside_the_commit_keeps_the_events() {
    use snap_repo::{AggregateRepository, StorePair};
    use snap_strategy::{SnapshotMode, Threshold};
    use snap_testkit::accounts::{AccountEvent, AccountV1};

    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let database = harness.database().await;
    let schema = database.schema().to_owned();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION \"{schema}\".refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'snapshots refused'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON \"{schema}\".snapshots
             FOR EACH ROW WHEN (NEW.version > 1) EXECUTE FUNCTION \"{schema}\".refuse();"
    )))
    .execute(database.pool())
    .await
    .unwrap();
    for keep in [1, 3] {
        let backend = database.clone().keep_history(keep);
        let repo = AggregateRepository::<AccountV1>::builder(backend)
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
        assert_eq!(repo.save(&mut root).await.unwrap(), 2, "keep {keep}");

        let stats = repo.stats();
        assert_eq!(
            (stats.snapshots_written, stats.snapshot_failures),
            (1, 1),
            "keep {keep}"
        );
        let events = database.event_store();
        assert_eq!(events.current_version(id, "Account").await.unwrap(), 2);
        let snapshot = database.snapshot_store().get_snapshot(id, "Account").await;
        assert_eq!(snapshot.unwrap().map(|s| s.version), Some(1), "keep {keep}");
        let loaded = repo.load(id).await.unwrap();
        let replayed = AggregateRepository::<AccountV1>::builder(StorePair::events_only(events))
            .build()
            .unwrap()
            .load(id)
            .await
            .unwrap();
        assert_eq!((loaded.version(), loaded.state()), (2, replayed.state()));
    }
}

/// A snapshot written on its own commits without waiting for the WAL flush, for its own
/// transaction only: the connection goes back to the pool with the server's setting, so the
/// appends that follow on it still wait for theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relaxed_snapshot_write_leaves_the_connection_durable() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    for keep in [1, 3] {
        let database = harness
            .options()
            .max_connections(1)
            .connect()
            .await
            .unwrap()
            .keep_history(keep);
        let id = &AggregateId::from(Uuid::new_v4());
        for version in 1..=3 {
            database
                .snapshot_store()
                .save_snapshot(&snapshot(id, version))
                .await
                .unwrap();
        }
        let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(database.pool())
            .await
            .unwrap();
        assert_eq!(setting, "on", "keep {keep}");
        let stored = database.snapshot_store().get_snapshot(id, "Account").await;
        assert_eq!(stored.unwrap().map(|s| s.version), Some(3), "keep {keep}");
    }
}
