//! The real `snap-es` binary against a SQLite file and the PostgreSQL server: every
//! subcommand, `--json` parsed, and each bad input with its exit status and one-line message.

#![allow(clippy::unwrap_used, reason = "test helpers panic like tests")]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};
use snap_es::postgres::PostgresOptions;
use snap_es::sqlite::SqliteDatabase;
use snap_es::{AggregateId, EventStore, NewEvent, Snapshot, SnapshotStore};
use snap_testkit::services::{nats_available, postgres_available, postgres_url};
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
/// events whose snapshot is at 5, under a string id.
async fn seed(snapshots: &impl SnapshotStore, events: &impl EventStore) -> AggregateId {
    let order = AggregateId::parse("Order-42 ü").unwrap();
    let new_events = (0..7)
        .map(|n| NewEvent::new("Added", json!({ "n": n })))
        .collect();
    events.append(&order, "Order", 0, new_events).await.unwrap();
    for snapshot in [
        Snapshot::new(&order, "Order", 5, json!({"n": 5}), 1),
        Snapshot::new(Uuid::new_v4(), "Order", 3, json!({"n": 3}), 2),
        Snapshot::new(Uuid::new_v4(), "User", 1, json!({"name": "ada"}), 1),
    ] {
        snapshots.save_snapshot(&snapshot).await.unwrap();
    }
    order
}

/// `command` with the database URL and `extra` after it.
fn with_target(command: &[&str], url: &str, extra: &[&str]) -> Vec<String> {
    command
        .iter()
        .chain(["--database-url", url].iter())
        .chain(extra.iter())
        .map(|s| (*s).to_owned())
        .collect()
}

/// What the standalone tool does without aggregate code: inspect shows the snapshot and the
/// head, health the lag; the jobs that replay refuse with the reason.
fn check_without_aggregate_code(url: &str, extra: &[&str]) {
    let owned = with_target(
        &["inspect", "--type", "Order", "--id", "Order-42 ü", "--json"],
        url,
        extra,
    );
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let inspected = json_of(&refs);
    assert_eq!(
        (
            &inspected["head"],
            &inspected["snapshot"]["version"],
            &inspected["behind"]
        ),
        (&json!(7), &json!(5), &json!(2)),
        "{inspected}"
    );
    assert_eq!(inspected["check"]["result"], "not_registered");
    let run_status = |command: &[&str]| {
        let owned = with_target(command, url, extra);
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        let output = snap_es(&refs);
        (output.status.code(), stdout(&output), stderr(&output))
    };
    let (code, out, _) = run_status(&["health", "--max-lag", "1", "--json"]);
    assert_eq!(code, Some(1), "{out}");
    let health: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(health["types"][0]["lag"]["max"], 2, "{health}");
    assert_eq!(run_status(&["health", "--max-lag", "2"]).0, Some(0));
    let (code, _, err) = run_status(&["rebuild", "--type", "Order"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("snap-es registers no aggregate types"),
        "{err}"
    );
}

/// stats, prune --dry-run and prune on a seeded database.
fn check_seeded(url: &str, extra: &[&str], order: &AggregateId) {
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

    check_without_aggregate_code(url, extra);

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
    check_seeded(&url, &[], &order);
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
        let json = json_of(&["schema", "--backend", backend, "--json"]);
        let migrations = json["migrations"].as_array().expect("a list");
        assert_eq!(json["backend"], backend);
        assert_eq!(migrations[0]["version"], 1, "{json}");
        assert!(
            migrations
                .iter()
                .any(|m| m["sql"].as_str().is_some_and(|sql| sql.contains(table))),
            "{backend}"
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_on_postgres() {
    if !postgres_available() {
        return;
    }
    let url = postgres_url();
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
    check_seeded(&url, &["--schema", &schema], &order);

    sqlx_drop_schema(&database, &schema).await;
}

async fn sqlx_drop_schema(database: &snap_es::postgres::PostgresDatabase, schema: &str) {
    let statement = format!("DROP SCHEMA \"{schema}\" CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(database.pool())
        .await
        .expect("drop the test schema");
}

/// The password the credential tests put in their URLs; it must never reach the terminal.
const PASSWORD: &str = "s3cret-pw";

/// Runs `args` and fails if standard output or standard error shows [`PASSWORD`].
fn assert_password_hidden(args: &[&str]) -> Output {
    let output = snap_es(args);
    // The arguments hold the password: name the command by its first word only.
    let command = args.first().copied().unwrap_or("");
    for (stream, text) in [("stdout", stdout(&output)), ("stderr", stderr(&output))] {
        assert!(
            !text.contains(PASSWORD),
            "`snap-es {command}` shows the password on {stream}: {text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
    output
}

/// `url` with its password set to [`PASSWORD`] (the test server trusts local connections and
/// ignores it).
fn with_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with ://");
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (user, host) = match rest[..authority_end].rfind('@') {
        Some(at) => (
            rest[..at].split(':').next().unwrap_or("postgres"),
            &rest[at + 1..],
        ),
        None => ("postgres", rest),
    };
    format!("{scheme}://{user}:{PASSWORD}@{host}")
}

#[test]
fn no_command_shows_the_password_of_an_unreachable_database() {
    let unreachable = format!("postgres://u:{PASSWORD}@127.0.0.1:1/test");
    let flag_form = format!("--database-url={unreachable}");
    let in_query = format!("postgres://u@127.0.0.1:1/test?password={PASSWORD}");
    let bad_port = format!("postgres://u:{PASSWORD}@127.0.0.1:notaport/test");
    let bad_scheme = format!("mysql://u:{PASSWORD}@localhost/x");
    let encoded = format!("postgres://u:{PASSWORD}%40x@127.0.0.1:1/test");
    // Each unreachable connection takes the tool's 5 s acquire timeout: run them side by side.
    let mut runs: Vec<Vec<&str>> = Vec::new();
    for url in [&unreachable, &in_query, &bad_port, &encoded] {
        let target = ["--database-url", url.as_str()];
        for command in [
            &["migrate"][..],
            &["stats"],
            &["stats", "--json"],
            &["prune", "--type", "Order"],
            &["prune", "--type", "Order", "--dry-run", "--json"],
        ] {
            runs.push(command.iter().chain(&target).copied().collect());
        }
    }
    std::thread::scope(|scope| {
        for args in &runs {
            scope.spawn(move || {
                let output = assert_password_hidden(args);
                assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
            });
        }
    });
    let output = assert_password_hidden(&["stats", &flag_form]);
    assert!(
        stderr(&output).contains("cannot connect"),
        "{}",
        stderr(&output)
    );

    // A URL the tool does not take is shown, without its password.
    let output = assert_password_hidden(&["stats", "--database-url", &bad_scheme]);
    assert!(
        stderr(&output).contains("mysql://u:***@localhost/x"),
        "{}",
        stderr(&output)
    );
    // Arguments clap refuses: a URL without its flag, a flag the command lacks.
    for args in [
        &["stats", &unreachable][..],
        &["migrate", "--database-url", &unreachable, "--bogus"],
        &["migrate", "--database-url", &unreachable, &unreachable],
        &[
            "schema",
            "--backend",
            "postgres",
            "--database-url",
            &unreachable,
        ],
        &["prune", "--database-url", &unreachable],
    ] {
        let output = assert_password_hidden(args);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_shows_the_password_of_a_postgres_database() {
    if !postgres_available() {
        return;
    }
    let url = with_password(&postgres_url());
    let schema = format!("snap_cli_{}", Uuid::new_v4().simple());
    let target = ["--database-url", &url, "--schema", &schema];
    let with = |command: &[&'static str]| -> Vec<&str> {
        command
            .iter()
            .copied()
            .chain(target.iter().copied())
            .collect()
    };

    let refused = assert_password_hidden(&with(&["stats"]));
    assert!(
        stderr(&refused).contains("run `snap-es migrate` first"),
        "{}",
        stderr(&refused)
    );
    let migrated = assert_password_hidden(&with(&["migrate"]));
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let shown = stdout(&migrated);
    assert!(
        shown.starts_with("migrated ") && shown.contains(":***@"),
        "migrate names the database without its password: {shown}"
    );
    for command in [
        &["stats"][..],
        &["stats", "--json"],
        &["prune", "--type", "Order", "--dry-run", "--json"],
        &["prune", "--type", "Order"],
    ] {
        let output = assert_password_hidden(&with(command));
        assert!(output.status.success(), "{command:?}: {}", stderr(&output));
    }
    let bad_schema =
        assert_password_hidden(&["stats", "--database-url", &url, "--schema", "Bad-Name"]);
    assert_eq!(bad_schema.status.code(), Some(2));
    let missing_database = url.rsplit_once('/').unwrap().0.to_owned() + "/snap_cli_no_such_db";
    let refused = assert_password_hidden(&["stats", "--database-url", &missing_database]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));

    let database = PostgresOptions::new(postgres_url())
        .schema(schema.clone())
        .migrate(false)
        .connect()
        .await
        .unwrap();
    sqlx_drop_schema(&database, &schema).await;
}

/// A schema whose version cannot be read is an error, not a database without snap-es tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_schema_version_is_reported() {
    if !postgres_available() {
        return;
    }
    let url = postgres_url();
    let schema = format!("snap_cli_{}", Uuid::new_v4().simple());
    let database = PostgresOptions::new(&url)
        .schema(schema.clone())
        .migrate(false)
        .connect()
        .await
        .unwrap();
    // A migrations table the version query cannot read (no `version` column).
    for statement in [
        format!("CREATE SCHEMA \"{schema}\""),
        format!("CREATE TABLE \"{schema}\"._sqlx_migrations (note text)"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(database.pool())
            .await
            .unwrap();
    }
    for args in [
        &["stats", "--database-url", &url, "--schema", &schema][..],
        &[
            "prune",
            "--database-url",
            &url,
            "--schema",
            &schema,
            "--type",
            "Order",
        ],
    ] {
        let output = snap_es(args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{message}");
        assert_eq!(message.lines().count(), 1, "{message:?}");
        assert!(
            !message.contains("run `snap-es migrate` first") && message.contains("version"),
            "the real error, not 'no snap-es tables': {message}"
        );
    }
    sqlx_drop_schema(&database, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_on_nats() {
    if !nats_available() {
        return;
    }
    let url = snap_testkit::services::NATS_URL;
    let prefix = format!("cli{}", &Uuid::new_v4().simple().to_string()[..12]);
    let target = ["--database-url", url, "--prefix", &prefix];
    // A look creates nothing: streams that are not there are an error.
    assert_refused(
        &[&["stats"][..], &target].concat(),
        "cannot open the JetStream streams",
    );
    let migrated = snap_es(&[&["migrate"][..], &target].concat());
    assert!(migrated.status.success(), "{}", stderr(&migrated));

    let database = snap_es::nats::NatsOptions::new(url)
        .prefix(prefix.clone())
        .migrate(false)
        .connect()
        .await
        .unwrap();
    let order = seed(&database.snapshot_store(), &database.event_store()).await;
    check_seeded(url, &["--prefix", &prefix], &order);
    database.destroy().await.unwrap();
}

#[test]
fn no_command_shows_a_nats_password_or_token() {
    for url in [
        format!("nats://u:{PASSWORD}@127.0.0.1:1"),
        format!("nats://{PASSWORD}@127.0.0.1:1"),
        format!("nats://127.0.0.1:1,nats://u:{PASSWORD}@127.0.0.1:2"),
    ] {
        for command in [
            &["migrate"][..],
            &["stats", "--json"],
            &["prune", "--type", "T"],
        ] {
            let args: Vec<&str> = command
                .iter()
                .copied()
                .chain(["--database-url", url.as_str()])
                .collect();
            let output = assert_password_hidden(&args);
            assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
            assert!(stderr(&output).contains("***"), "{}", stderr(&output));
        }
    }
}
