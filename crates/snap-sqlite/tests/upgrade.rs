//! A database written at each older schema version (1, and 2 of the release before string ids)
//! moves to the latest schema with nothing lost: rows written as that version laid them out,
//! by plain SQL, read back through the stores after the migration, and the stores write to it
//! afterwards, string ids included.

use snap_sqlite::{MIGRATIONS, SqliteDatabase, SqliteOptions};
use snap_testkit::upgrade;
use uuid::Uuid;

fn index_names(connection: &rusqlite::Connection) -> Vec<String> {
    let mut statement = connection
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .expect("list the indexes");
    statement
        .query_map([], |row| row.get(0))
        .and_then(Iterator::collect)
        .expect("read the index names")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_populated_database_at_each_older_schema_migrates_to_the_latest_and_loses_nothing() {
    for start in [1, 2] {
        upgrade_from(start).await;
    }
}

async fn upgrade_from(start: u32) {
    let dir = std::env::temp_dir().join(format!("snap-sqlite-upgrade-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("the upgrade step");
    let path = dir.join("v1.db");
    let database = SqliteOptions::file(&path)
        .migrate(false)
        .open()
        .await
        .expect("the upgrade step");
    database.migrate_to(start).await.expect("the upgrade step");
    assert_eq!(
        database.schema_version().await.expect("the upgrade step"),
        start
    );
    database.close();

    // Rows as versions 1 and 2 wrote them: hyphenated ids, JSON text, microsecond timestamps.
    let streams = [(Uuid::new_v4(), 3_i64), (Uuid::new_v4(), 5)];
    {
        let connection = rusqlite::Connection::open(&path).expect("the upgrade step");
        assert_eq!(
            index_names(&connection).contains(&"snapshots_created_at".to_owned()),
            start == 1
        );
        for (id, n) in streams {
            for version in 1..=n {
                connection
                    .execute(
                        "INSERT INTO events VALUES ('Account', ?1, ?2, ?3, 'Deposited', ?4, '{}', ?5)",
                        rusqlite::params![
                            id.hyphenated().to_string(),
                            version,
                            Uuid::new_v4().hyphenated().to_string(),
                            upgrade::payload(version).to_string(),
                            1_700_000_000_000_000_i64 + version,
                        ],
                    )
                    .expect("the upgrade step");
            }
            connection
                .execute(
                    "INSERT INTO snapshots VALUES ('Account', ?1, ?2, 2, ?3, 1700000000000000)",
                    rusqlite::params![
                        id.hyphenated().to_string(),
                        n - 1,
                        upgrade::state(n).to_string()
                    ],
                )
                .expect("the upgrade step");
        }
    }

    let database = SqliteDatabase::open(&path).await.expect("the upgrade step");
    assert_eq!(
        database.schema_version().await.expect("the upgrade step"),
        u32::try_from(MIGRATIONS.len()).expect("the upgrade step")
    );
    upgrade::rows_read_back_and_take_writes(
        &database.event_store(),
        &database.snapshot_store(),
        &streams,
    )
    .await;
    database.close();
    let connection = rusqlite::Connection::open(&path).expect("the upgrade step");
    assert!(!index_names(&connection).contains(&"snapshots_created_at".to_owned()));
    drop(connection);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_to_refuses_an_unknown_version_and_never_goes_back() {
    let database = SqliteDatabase::open_in_memory()
        .await
        .expect("the upgrade step");
    let latest = u32::try_from(MIGRATIONS.len()).expect("the upgrade step");
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
