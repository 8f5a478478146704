//! A schema written at version 1 moves to the latest schema with nothing lost: rows written
//! as version 1 laid them out, by plain SQL, read back through the stores after the migration,
//! and the stores write to it afterwards.

mod support;

use serde_json::json;
use snap_core::{EventStore, NewEvent, Snapshot, SnapshotStore};
use snap_postgres::MIGRATIONS;
use support::PgHarness;
use uuid::Uuid;

async fn index_names(database: &snap_postgres::PostgresDatabase) -> Vec<String> {
    sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 ORDER BY 1")
        .bind(database.schema())
        .fetch_all(database.pool())
        .await
        .expect("list the indexes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_with_data_migrates_to_the_latest_and_loses_nothing() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let database = harness.options().migrate(false).connect().await.unwrap();
    database.migrate_to(1).await.unwrap();
    assert_eq!(database.schema_version().await.unwrap(), 1);
    assert!(
        index_names(&database)
            .await
            .contains(&"snapshots_created_at".to_owned())
    );
    let schema = database.schema().to_owned();

    // Rows as version 1 wrote them, history included.
    let ids = [Uuid::new_v4(), Uuid::new_v4()];
    for (id, n) in ids.iter().zip([3_i64, 5]) {
        for version in 1..=n {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO \"{schema}\".events
                     (aggregate_type, aggregate_id, version, event_id, event_type, payload, metadata)
                 VALUES ('Account', $1, $2, $3, 'Deposited', $4, '{{}}')"
            )))
            .bind(id)
            .bind(version)
            .bind(Uuid::new_v4())
            .bind(json!({"amount": version, "note": "ünïcode"}))
            .execute(database.pool())
            .await
            .unwrap();
        }
        for table in ["snapshots", "snapshot_history"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO \"{schema}\".{table} VALUES ('Account', $1, $2, 2, $3, now())"
            )))
            .bind(id)
            .bind(n - 1)
            .bind(json!({"balance": n * 10}))
            .execute(database.pool())
            .await
            .unwrap();
        }
    }

    database.migrate().await.unwrap();
    assert_eq!(
        database.schema_version().await.unwrap(),
        i64::try_from(MIGRATIONS.len()).unwrap()
    );
    assert!(
        !index_names(&database)
            .await
            .contains(&"snapshots_created_at".to_owned())
    );
    let (events, snapshots) = (database.event_store(), database.snapshot_store());
    for (id, n) in ids.iter().zip([3_u64, 5]) {
        let stored = events.load(*id, "Account", 0, None).await.unwrap();
        assert_eq!(stored.len() as u64, n);
        for (event, version) in stored.iter().zip(1..) {
            assert_eq!(event.version, version);
            assert_eq!(event.payload, json!({"amount": version, "note": "ünïcode"}));
        }
        let snapshot = snapshots
            .get_snapshot(*id, "Account")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((snapshot.version, snapshot.schema_version), (n - 1, 2));
        assert_eq!(snapshot.state, json!({"balance": n * 10}));
        let version = events
            .append(
                *id,
                "Account",
                n,
                vec![NewEvent::new("Deposited", json!({"amount": 1}))],
            )
            .await
            .unwrap();
        snapshots
            .save_snapshot(&Snapshot::new(
                *id,
                "Account",
                version,
                json!({"balance": 1}),
                2,
            ))
            .await
            .unwrap();
        assert_eq!(
            snapshots
                .get_snapshot(*id, "Account")
                .await
                .unwrap()
                .unwrap()
                .version,
            n + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_to_refuses_an_unknown_version_and_never_goes_back() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let database = harness.database().await;
    let latest = i64::try_from(MIGRATIONS.len()).unwrap();
    let error = database.migrate_to(latest + 1).await.unwrap_err();
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert!(
        source
            .as_deref()
            .is_some_and(|s| s.contains("no schema version")),
        "{error}: {source:?}"
    );
    database.migrate_to(1).await.unwrap();
    assert_eq!(database.schema_version().await.unwrap(), latest);
}
