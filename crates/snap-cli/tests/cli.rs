//! The real `snap-es` binary against a SQLite file and the PostgreSQL server: every
//! subcommand, `--json` parsed, and each bad input with its exit status and one-line message.

#![allow(clippy::unwrap_used, reason = "test helpers panic like tests")]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};
use snap_es::postgres::PostgresOptions;
use snap_es::sqlite::SqliteDatabase;
use snap_es::{EventStore, NewEvent, Snapshot, SnapshotStore};
use uuid::Uuid;

fn snap_es(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snap-es"))
        .args(args)
        .output()
        .expect("run snap-es")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Fails with exit status 2 and one line on standard error containing `expected`.
fn assert_refused(args: &[&str], expected: &str) {
    let output = snap_es(args);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
    assert_eq!(
        message.lines().count(),
        1,
        "{args:?}: one line, got {message:?}"
    );
    assert!(
        message.contains(expected),
        "{args:?}: {message:?} lacks {expected:?}"
    );
    assert!(!message.contains("panicked"), "{message}");
}

fn json_of(args: &[&str]) -> Value {
    let output = snap_es(args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_str(&stdout(&output)).expect("valid JSON")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("snap-cli-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two Order snapshots (schemas 1 and 2) and one User snapshot, and an Order stream of 7
/// events whose snapshot is at 5.
async fn seed(snapshots: &impl SnapshotStore, events: &impl EventStore) -> Uuid {
    let order = Uuid::new_v4();
    let new_events = (0..7)
        .map(|n| NewEvent::new("Added", json!({ "n": n })))
        .collect();
    events.append(order, "Order", 0, new_events).await.unwrap();
    for snapshot in [
        Snapshot::new(order, "Order", 5, json!({"n": 5}), 1),
        Snapshot::new(Uuid::new_v4(), "Order", 3, json!({"n": 3}), 2),
        Snapshot::new(Uuid::new_v4(), "User", 1, json!({"name": "ada"}), 1),
    ] {
        snapshots.save_snapshot(&snapshot).await.unwrap();
    }
    order
}

/// stats, prune --dry-run and prune on a seeded database.
fn check_seeded(url: &str, extra: &[&str], order: Uuid) {
    let args = |command: &[&'static str]| -> Vec<String> {
        command
            .iter()
            .map(|s| (*s).to_owned())
            .chain(["--database-url".to_owned(), url.to_owned()])
            .chain(extra.iter().map(|s| (*s).to_owned()))
            .collect()
    };
    let run_json = |command: &[&'static str]| {
        let owned = args(command);
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        json_of(&refs)
    };
    let stats = run_json(&["stats", "--json"]);
    let groups: Vec<(String, u64, u64)> = stats["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["aggregate_type"].as_str().unwrap().to_owned(),
                g["schema_version"].as_u64().unwrap(),
                g["snapshots"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("Order".into(), 1, 1),
            ("Order".into(), 2, 1),
            ("User".into(), 1, 1)
        ]
    );
    assert_eq!(stats["behind"][0]["aggregate_id"], order.to_string());
    assert_eq!(stats["behind"][0]["behind"], 2);

    let only_users = run_json(&["stats", "--json", "--type", "User"]);
    assert_eq!(only_users["snapshots"].as_array().unwrap().len(), 1);

    let owned = args(&["stats"]);
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let table = stdout(&snap_es(&refs));
    assert!(
        table.contains("Order") && table.contains("furthest behind"),
        "{table}"
    );

    let dry = run_json(&[
        "prune",
        "--type",
        "Order",
        "--schema-below",
        "2",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(
        (dry["snapshots"].as_u64(), dry["dry_run"].as_bool()),
        (Some(1), Some(true))
    );
    let unchanged = run_json(&["stats", "--json"]);
    assert_eq!(
        unchanged["snapshots"], stats["snapshots"],
        "a dry run changes nothing"
    );

    let owned = args(&["prune", "--type", "Order", "--schema-below", "2"]);
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let pruned = snap_es(&refs);
    assert!(pruned.status.success(), "{}", stderr(&pruned));
    assert!(
        stdout(&pruned).contains("removed 1 snapshots of Order"),
        "{}",
        stdout(&pruned)
    );
    let after = run_json(&["stats", "--json", "--type", "Order"]);
    assert_eq!(after["snapshots"].as_array().unwrap().len(), 1);
    let everything = run_json(&["prune", "--type", "User", "--json"]);
    assert_eq!(everything["snapshots"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_on_a_sqlite_file() {
    let dir = TempDir::new();
    let path = dir.path("cli.db");
    let url = format!("sqlite://{}", path.display());

    let migrated = snap_es(&["migrate", "--database-url", &url]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let again = snap_es(&["migrate", "--database-url", &url]);
    assert!(again.status.success(), "migrate is idempotent");

    let database = SqliteDatabase::open(&path).await.unwrap();
    let order = seed(&database.snapshot_store(), &database.event_store()).await;
    database.close();
    check_seeded(&url, &[], order);
}

#[test]
fn schema_prints_each_backend() {
    for (backend, table) in [
        ("sqlite", "CREATE TABLE snapshots"),
        ("postgres", "snapshot_history"),
    ] {
        let output = snap_es(&["schema", "--backend", backend]);
        assert!(output.status.success());
        assert!(stdout(&output).contains(table), "{backend}");
    }
    assert_refused(&["schema", "--backend", "oracle"], "invalid value 'oracle'");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_line_and_exit_status_2() {
    let dir = TempDir::new();
    let missing = format!("sqlite://{}", dir.path("missing.db").display());
    let bare_path = dir.path("bare.db");
    // An empty file is an empty SQLite database: no snap-es tables.
    std::fs::write(&bare_path, b"").unwrap();
    let bare = format!("sqlite://{}", bare_path.display());

    assert_refused(&["prune", "--database-url", &missing], "--type");
    assert_refused(
        &["stats", "--database-url", "mysql://localhost/x"],
        "bad database URL",
    );
    assert_refused(
        &["stats", "--database-url", "sqlite://"],
        "bad database URL",
    );
    assert_refused(&["stats", "--database-url", &missing], "no database file");
    assert!(!dir.path("missing.db").exists(), "stats creates no file");
    assert_refused(
        &["stats", "--database-url", &bare],
        "run `snap-es migrate` first",
    );
    assert_refused(
        &["prune", "--database-url", &bare, "--type", ""],
        "snap-es migrate",
    );
    assert_refused(
        &["stats", "--database-url", &bare, "--limit", "many"],
        "invalid value 'many'",
    );
    assert_refused(&["frobnicate"], "unrecognized subcommand");
    assert_refused(
        &[
            "stats",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/test",
        ],
        "cannot connect",
    );
    let help = snap_es(&["--help"]);
    assert!(help.status.success() && stdout(&help).contains("prune"));
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[allow(clippy::print_stderr, reason = "a skipped test says so")]
fn postgres_reachable() -> bool {
    // With DATABASE_URL set the test runs and a wrong URL fails it loudly.
    let reachable = std::env::var("DATABASE_URL").is_ok()
        || std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], 5432)),
            std::time::Duration::from_secs(2),
        )
        .is_ok();
    if !reachable {
        assert!(
            std::env::var("SNAP_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "SNAP_REQUIRE_POSTGRES=1 but no PostgreSQL server answers"
        );
        eprintln!("SKIPPED: no PostgreSQL server at 127.0.0.1:5432");
    }
    reachable
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_on_postgres() {
    if !postgres_reachable() {
        return;
    }
    let url = database_url();
    let schema = format!("snap_cli_{}", Uuid::new_v4().simple());
    assert_refused(
        &["stats", "--database-url", &url, "--schema", &schema],
        "run `snap-es migrate` first",
    );
    assert_refused(
        &["stats", "--database-url", &url, "--schema", "Bad-Name"],
        "cannot connect",
    );
    let migrated = snap_es(&["migrate", "--database-url", &url, "--schema", &schema]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));

    let database = PostgresOptions::new(&url)
        .schema(schema.clone())
        .migrate(false)
        .connect()
        .await
        .unwrap();
    let order = seed(&database.snapshot_store(), &database.event_store()).await;
    check_seeded(&url, &["--schema", &schema], order);

    sqlx_drop_schema(&database, &schema).await;
}

async fn sqlx_drop_schema(database: &snap_es::postgres::PostgresDatabase, schema: &str) {
    let statement = format!("DROP SCHEMA \"{schema}\" CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(database.pool())
        .await
        .expect("drop the test schema");
}
