//! The example application's binary, run for real against a SQLite file and the PostgreSQL
//! server: the operator commands an application mounts with `snap_es::admin`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use snap_es::postgres::{PostgresDatabase, PostgresOptions};
use snap_es::sqlite::SqliteOptions;
use snap_es::{AggregateId, SnapshotStore};
use snap_testkit::services::{NATS_URL, nats_available, postgres_available, postgres_url};

fn bank_ops(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bank-ops"))
        .args(args)
        .output()
        .expect("run bank-ops")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `bank-ops snapshots <args>`; the exit status and standard output.
fn snapshots(target: &[&str], args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["snapshots"];
    all.extend_from_slice(&args[..1]);
    all.extend_from_slice(target);
    all.extend_from_slice(&args[1..]);
    let output = bank_ops(&all);
    let (out, err) = (text(&output.stdout), text(&output.stderr));
    assert!(!err.contains("panicked"), "{err}");
    (output.status.code().unwrap_or(-1), out, err)
}

/// Runs a command with `--json` and parses what it printed.
fn json(target: &[&str], args: &[&str], status: i32) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let (code, out, err) = snapshots(target, &with_json);
    assert_eq!(code, status, "{args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

fn seed(target: &[&str], accounts: u32, events: u32) {
    let accounts = accounts.to_string();
    let events = events.to_string();
    let mut args = vec!["seed", "--accounts", &accounts, "--events", &events];
    args.extend_from_slice(target);
    let output = bank_ops(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

fn account(n: u32) -> AggregateId {
    AggregateId::parse(&format!("account-{n:05}")).expect("an id")
}

/// Writes a snapshot of `account` whose balance is one cent off its events: the drift an
/// `apply` change without a schema bump leaves.
async fn inject_drift(store: &dyn SnapshotStore, n: u32) {
    let mut snapshot = store
        .get_snapshot(&account(n), "BankAccount")
        .await
        .expect("read")
        .expect("a snapshot");
    let balance = snapshot.state["balance"].as_i64().expect("a balance");
    snapshot.state["balance"] = (balance + 1).into();
    store.save_snapshot(&snapshot).await.expect("write");
}

/// The accounts that have a snapshot.
async fn snapshotted(store: &dyn SnapshotStore, accounts: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for n in 0..accounts {
        if store
            .get_snapshot(&account(n), "BankAccount")
            .await
            .expect("read")
            .is_some()
        {
            found.push(n);
        }
    }
    found
}

/// The whole day on one database: health before and after, rebuild, verify, a drift found
/// and shown, repaired.
async fn operate(target: &[&str], store: &dyn SnapshotStore) {
    seed(target, 120, 10);
    let health = json(target, &["health", "--max-lag", "5"], 1);
    assert_eq!(health["healthy"], false, "{health}");
    assert_eq!(health["types"][0]["aggregate_type"], "BankAccount");
    assert_eq!(health["types"][0]["lag"]["p99"], 10, "{health}");
    assert_eq!(health["types"][0]["over"][0], "lag");

    let rebuilt = json(target, &["rebuild", "--type", "BankAccount"], 0);
    assert_eq!(
        (&rebuilt["total"], &rebuilt["written"], &rebuilt["complete"]),
        (&Value::from(120), &Value::from(120), &Value::from(true)),
        "{rebuilt}"
    );
    let wallets = json(target, &["rebuild", "--type", "Wallet"], 0);
    assert_eq!(
        wallets["written"], 10,
        "a decider is rebuilt too: {wallets}"
    );
    // Off a terminal, progress comes as plain lines on standard error, the result on standard
    // output.
    let (code, out, err) = snapshots(target, &["rebuild", "--type", "Wallet"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("rebuild Wallet: 10/10 (100%)"), "{err}");
    assert!(
        out.starts_with("rebuild Wallet: 10 of 10 aggregates in"),
        "{out}"
    );
    let (code, out, _) = snapshots(target, &["health", "--max-lag", "0"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("healthy (lag p99 <= 0)"), "{out}");

    let verified = json(target, &["verify", "--type", "BankAccount"], 0);
    assert_eq!(verified["matches"], 120, "{verified}");
    inject_drift(store, 42).await;
    let verified = json(target, &["verify", "--type", "BankAccount"], 1);
    assert_eq!(verified["matches"], 119, "{verified}");
    let differ = &verified["differ"][0];
    assert_eq!(differ["aggregate_id"], "account-00042");
    assert_eq!(differ["differences"][0]["path"], "/balance");
    assert_eq!(
        differ["differences"][0]["snapshot"].as_i64(),
        differ["differences"][0]["replay"].as_i64().map(|b| b + 1)
    );
    let sample = json(target, &["verify", "--type", "Wallet", "--sample", "4"], 0);
    assert_eq!(
        (&sample["total"], &sample["matches"]),
        (&4.into(), &4.into())
    );

    let (code, out, _) = snapshots(
        target,
        &["inspect", "--type", "BankAccount", "--id", "account-00042"],
    );
    assert_eq!(code, 1, "a drift is shown and exits 1: {out}");
    assert!(out.contains("snapshot   version 10, schema 1"), "{out}");
    assert!(out.contains("/balance: snapshot 46, replay 45"), "{out}");
    let inspected = json(
        target,
        &["inspect", "--type", "BankAccount", "--id", "account-00007"],
        0,
    );
    assert_eq!(inspected["check"]["result"], "matches", "{inspected}");
    let written = inspected["snapshot"]["updated_at"]
        .as_str()
        .unwrap_or_default();
    let rfc3339 = &snap_es::time::format_description::well_known::Rfc3339;
    assert!(
        snap_es::time::OffsetDateTime::parse(written, rfc3339).is_ok(),
        "times in RFC 3339: {inspected}"
    );
    assert_eq!(
        (&inspected["head"], &inspected["behind"]),
        (&10.into(), &0.into())
    );

    // One aggregate rebuilt by id repairs it.
    let repaired = json(
        target,
        &["rebuild", "--type", "BankAccount", "--id", "account-00042"],
        0,
    );
    assert_eq!(repaired["written"], 1);
    json(target, &["verify", "--type", "BankAccount"], 0);

    // Snapshot ages: every snapshot is at least a second old after a second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(snapshots(target, &["health", "--max-age", "1h"]).0, 0);
    let aged = json(target, &["health", "--max-age", "0s"], 1);
    assert_eq!(aged["types"][0]["over"][0], "age", "{aged}");
}

/// A rebuild stopped by Ctrl-C reports what it did and leaves every account up to one done,
/// none after; run again with its cursor it does the rest, no account twice.
async fn interrupt_and_resume(target: &[&str], store: &dyn SnapshotStore, dir: &Path) {
    seed(target, 300, 3);
    let cursor = dir.join("rebuild.cursor");
    let cursor_arg = cursor.to_str().expect("a UTF-8 path");
    let job = [
        "--type",
        "BankAccount",
        "--max-rate",
        "100",
        "--cursor",
        cursor_arg,
        "--json",
    ];
    let mut args = vec!["snapshots", "rebuild"];
    args.extend_from_slice(target);
    args.extend_from_slice(&job);
    let child = Command::new(env!("CARGO_BIN_EXE_bank-ops"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bank-ops");
    // Stop it once it is under way: its cursor is written after the first aggregates.
    for _ in 0..600 {
        if cursor.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cursor.exists(), "the rebuild writes its cursor as it goes");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = interrupt(child);
    assert_eq!(first.status.code(), Some(130), "{}", text(&first.stderr));
    let first: Value = serde_json::from_slice(&first.stdout).expect("JSON");
    let written = first["written"].as_u64().expect("a count");
    assert_eq!(first["interrupted"], true, "{first}");
    assert!(0 < written && written < 300, "{first}");
    let through = u32::try_from(written - 1).expect("small");
    assert_eq!(first["done_through"], account(through).to_string());
    assert!(cursor.exists(), "the cursor stays for the next run");
    let done: Vec<u32> = (0..=through).collect();
    assert_eq!(
        snapshotted(store, 300).await,
        done,
        "every account up to one, none after"
    );

    let second = json(
        target,
        &["rebuild", "--type", "BankAccount", "--cursor", cursor_arg],
        0,
    );
    assert_eq!(second["resumed_after"], first["done_through"], "{second}");
    assert_eq!(second["written"].as_u64(), Some(300 - written), "{second}");
    assert!(!cursor.exists(), "a finished run removes its cursor");
    assert_eq!(snapshotted(store, 300).await, (0..300).collect::<Vec<_>>());
    json(target, &["verify", "--type", "BankAccount"], 0);
}

/// Sends SIGINT (what Ctrl-C sends) and waits.
fn interrupt(child: Child) -> Output {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    child.wait_with_output().expect("wait for bank-ops")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("bank-ops-{}", uuid_like()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uuid_like() -> String {
    snap_es::uuid::Uuid::new_v4().simple().to_string()
}

/// A SQLite file in `dir`: its URL and the database.
async fn sqlite_file(dir: &TempDir) -> (String, snap_es::sqlite::SqliteDatabase) {
    let path = dir.0.join("bank.db");
    let database = SqliteOptions::file(&path).open().await.expect("open");
    (format!("sqlite://{}", path.display()), database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_day_on_a_sqlite_file() {
    let dir = TempDir::new();
    let (url, database) = sqlite_file(&dir).await;
    operate(&["--database-url", &url], &database.snapshot_store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rebuild_resumes_on_a_sqlite_file() {
    let dir = TempDir::new();
    let (url, database) = sqlite_file(&dir).await;
    interrupt_and_resume(
        &["--database-url", &url],
        &database.snapshot_store(),
        &dir.0,
    )
    .await;
}

/// A fresh schema of the test server, dropped by [`drop_schema`].
async fn fresh_schema() -> (String, PostgresDatabase) {
    let schema = format!("bank_ops_{}", uuid_like());
    let database = PostgresOptions::new(postgres_url())
        .schema(schema.clone())
        .connect()
        .await
        .expect("connect");
    (schema, database)
}

async fn drop_schema(database: &PostgresDatabase, schema: &str) {
    let statement = format!("DROP SCHEMA \"{schema}\" CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(database.pool())
        .await
        .expect("drop the test schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_day_on_postgres() {
    if !postgres_available() {
        return;
    }
    let (schema, database) = fresh_schema().await;
    let url = postgres_url();
    operate(
        &["--database-url", &url, "--schema", &schema],
        &database.snapshot_store(),
    )
    .await;
    drop_schema(&database, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rebuild_resumes_on_postgres() {
    if !postgres_available() {
        return;
    }
    let (schema, database) = fresh_schema().await;
    let url = postgres_url();
    let dir = TempDir::new();
    interrupt_and_resume(
        &["--database-url", &url, "--schema", &schema],
        &database.snapshot_store(),
        &dir.0,
    )
    .await;
    drop_schema(&database, &schema).await;
}

/// A NATS JetStream database of its own (streams under a fresh prefix), deleted at the end.
async fn fresh_prefix() -> (String, snap_es::nats::NatsDatabase) {
    let prefix = format!("ops{}", &uuid_like()[..12]);
    let database = snap_es::nats::NatsOptions::new(NATS_URL)
        .prefix(prefix.clone())
        .connect()
        .await
        .expect("connect");
    (prefix, database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_day_on_nats() {
    if !nats_available() {
        return;
    }
    let (prefix, database) = fresh_prefix().await;
    operate(
        &["--database-url", NATS_URL, "--prefix", &prefix],
        &database.snapshot_store(),
    )
    .await;
    database.destroy().await.expect("delete the test streams");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rebuild_resumes_on_nats() {
    if !nats_available() {
        return;
    }
    let (prefix, database) = fresh_prefix().await;
    let dir = TempDir::new();
    interrupt_and_resume(
        &["--database-url", NATS_URL, "--prefix", &prefix],
        &database.snapshot_store(),
        &dir.0,
    )
    .await;
    database.destroy().await.expect("delete the test streams");
}

/// The password the test puts in its URL (the test server trusts local connections).
const PASSWORD: &str = "s3cret-pw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_shows_the_password() {
    if !postgres_available() {
        return;
    }
    let (schema, database) = fresh_schema().await;
    let url = postgres_url().replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
    assert!(url.contains(PASSWORD), "the test URL has a user: {url}");
    seed(
        &["--database-url", &postgres_url(), "--schema", &schema],
        5,
        2,
    );
    let target = ["--database-url", url.as_str(), "--schema", &schema];
    let unreachable = url.replace(":5432/", ":1/");
    let bad = ["--database-url", unreachable.as_str()];
    let conninfo = format!("host=127.0.0.1 port=1 user=postgres password={PASSWORD}");
    let settings = ["--database-url", conninfo.as_str()];
    for (target, args, status) in [
        (&target[..], &["rebuild", "--type", "BankAccount"][..], 0),
        (
            &target[..],
            &["verify", "--type", "BankAccount", "--json"][..],
            0,
        ),
        (
            &target[..],
            &["inspect", "--type", "BankAccount", "--id", "account-00001"][..],
            0,
        ),
        (&target[..], &["health", "--max-lag", "0"][..], 1),
        (&target[..], &["rebuild", "--type", "Nope"][..], 2),
        (&bad[..], &["rebuild", "--type", "BankAccount"][..], 2),
        (&bad[..], &["health"][..], 2),
        (&settings[..], &["stats"][..], 2),
    ] {
        let (code, out, err) = snapshots(target, args);
        assert_eq!(code, status, "{args:?}: {out}{err}");
        assert!(
            !out.contains(PASSWORD) && !err.contains(PASSWORD),
            "{args:?} shows the password: {out}{err}"
        );
    }
    // The application's own command uses the same rule for its messages.
    let seeded = bank_ops(&["seed", "--database-url", &unreachable, "--accounts", "1"]);
    assert_eq!(seeded.status.code(), Some(2));
    let err = text(&seeded.stderr);
    assert!(!err.contains(PASSWORD) && err.contains("seed"), "{err}");
    drop_schema(&database, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_line_and_exit_status_2() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("bank.db").display());
    seed(&["--database-url", &url], 3, 2);
    let target = ["--database-url", url.as_str()];
    let cursor = dir.0.join("wallet.cursor");
    std::fs::write(&cursor, r#"{"aggregate_type":"Wallet","after":"wallet-1"}"#).expect("write");
    let cursor = cursor.to_str().expect("UTF-8");
    for (args, expected) in [
        (
            &["rebuild", "--type", "Ledger"][..],
            "unknown aggregate type \"Ledger\": this binary registers BankAccount, Wallet",
        ),
        (
            &["verify", "--type", "BankAccount", "--id", ""][..],
            "bad aggregate id \"\"",
        ),
        (
            &["verify", "--type", "BankAccount", "--id", "account-99999"][..],
            "no events for aggregate account-99999 of type BankAccount",
        ),
        (
            &["inspect", "--type", "BankAccount", "--id", "nobody"][..],
            "no events and no snapshot for aggregate nobody",
        ),
        (
            &["rebuild", "--type", "BankAccount", "--cursor", cursor][..],
            "is for type \"Wallet\", not \"BankAccount\"",
        ),
        (
            &["rebuild", "--type", "BankAccount", "--concurrency", "0"][..],
            "invalid value '0'",
        ),
        (&["health", "--max-age", "soon"][..], "not a duration"),
        (
            &["health", "--type", "BankAcount"][..],
            "no aggregates of type \"BankAcount\"",
        ),
        (
            &[
                "verify", "--type", "Wallet", "--sample", "2", "--cursor", cursor,
            ][..],
            "cannot be used with",
        ),
        (
            &["rebuild", "--type", "Wallet", "--max-rate", "2000000"][..],
            "invalid value '2000000'",
        ),
    ] {
        let (code, out, err) = snapshots(&target, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    // No command: the help, and status 2.
    let help = bank_ops(&["snapshots"]);
    assert_eq!(help.status.code(), Some(2));
    assert!(
        text(&help.stderr).contains("rebuild"),
        "{}",
        text(&help.stderr)
    );
    let migrated = json(&target, &["migrate"], 0);
    assert_eq!(migrated["schema_version"], 3, "{migrated}");
    let missing = format!("sqlite://{}", dir.0.join("none.db").display());
    let (code, _, err) = snapshots(
        &["--database-url", &missing],
        &["rebuild", "--type", "Wallet"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("no database file at"), "{err}");
}
