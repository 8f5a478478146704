//! A schema written at each older version (1, and 2 of the release before string ids, whose
//! ids were `uuid` columns) moves to the latest schema with nothing lost: rows written as that
//! version laid them out, by plain SQL, read back through the stores after the migration, and
//! the stores write to it afterwards, string ids included.

mod support;

use snap_postgres::MIGRATIONS;
use snap_testkit::upgrade;
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
async fn a_populated_schema_at_each_older_version_migrates_to_the_latest_and_loses_nothing() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    for start in [1, 2] {
        upgrade_from(&harness, start).await;
    }
}

async fn upgrade_from(harness: &PgHarness, start: i64) {
    let database = harness
        .options()
        .migrate(false)
        .connect()
        .await
        .expect("the upgrade step");
    database.migrate_to(start).await.expect("the upgrade step");
    assert_eq!(
        database.schema_version().await.expect("the upgrade step"),
        start
    );
    assert_eq!(
        index_names(&database)
            .await
            .contains(&"snapshots_created_at".to_owned()),
        start == 1
    );
    let schema = database.schema().to_owned();

    // Rows as versions 1 and 2 wrote them (uuid ids), history included.
    let streams = [(Uuid::new_v4(), 3_i64), (Uuid::new_v4(), 5)];
    for (id, n) in streams {
        for version in 1..=n {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO \"{schema}\".events
                     (aggregate_type, aggregate_id, version, event_id, event_type, payload, metadata)
                 VALUES ('Account', $1, $2, $3, 'Deposited', $4, '{{}}')"
            )))
            .bind(id)
            .bind(version)
            .bind(Uuid::new_v4())
            .bind(upgrade::payload(version))
            .execute(database.pool())
            .await
            .expect("the upgrade step");
        }
        for table in ["snapshots", "snapshot_history"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO \"{schema}\".{table} VALUES ('Account', $1, $2, 2, $3, now())"
            )))
            .bind(id)
            .bind(n - 1)
            .bind(upgrade::state(n))
            .execute(database.pool())
            .await
            .expect("the upgrade step");
        }
    }

    database.migrate().await.expect("the upgrade step");
    assert_eq!(
        database.schema_version().await.expect("the upgrade step"),
        i64::try_from(MIGRATIONS.len()).expect("the upgrade step")
    );
    assert!(
        !index_names(&database)
            .await
            .contains(&"snapshots_created_at".to_owned())
    );
    upgrade::rows_read_back_and_take_writes(
        &database.event_store(),
        &database.snapshot_store(),
        &streams,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_to_refuses_an_unknown_version_and_never_goes_back() {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return;
    }
    let database = harness.database().await;
    let latest = i64::try_from(MIGRATIONS.len()).expect("the upgrade step");
    let error = database.migrate_to(latest + 1).await.unwrap_err();
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert!(
        source
            .as_deref()
            .is_some_and(|s| s.contains("no schema version")),
        "{error}: {source:?}"
    );
    database.migrate_to(1).await.expect("the upgrade step");
    assert_eq!(
        database.schema_version().await.expect("the upgrade step"),
        latest
    );
}
