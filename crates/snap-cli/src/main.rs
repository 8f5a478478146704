//! `snap-es`, the operator tool: apply or print the schema, see snapshot health, prune old
//! snapshots, on `sqlite://PATH` and `postgres://...` databases and on NATS JetStream
//! (`nats://HOST:PORT`, with `--prefix`).
//!
//! ```text
//! snap-es migrate --database-url URL [--schema NAME]
//! snap-es schema --backend sqlite|postgres
//! snap-es stats --database-url URL [--schema NAME] [--type T] [--limit N] [--json]
//! snap-es prune --database-url URL [--schema NAME] --type T [--schema-below N] [--dry-run] [--json]
//! ```
//!
//! Exit status 0 on success, 2 with one line on standard error for a bad argument, a bad URL,
//! an unreachable database, a database without the snap-es schema or one whose schema version
//! cannot be read.
//!
//! No message shows a password: a URL is shown with its password as `***`, and a password
//! given on the command line is replaced by `***` wherever a message would repeat it.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports on its terminal"
)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use snap_es::nats::{NatsDatabase, NatsOptions};
use snap_es::postgres::{PostgresDatabase, PostgresOptions};
use snap_es::sqlite::{SqliteDatabase, SqliteOptions};
use snap_es::{SnapshotAdmin, SnapshotLag, SnapshotStore, SnapshotTypeStats};

#[derive(Debug, Parser)]
#[command(
    name = "snap-es",
    version,
    about = "Operate snap-es snapshot and event stores."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// `sqlite://PATH` (`sqlite:///abs/path` for an absolute path), `postgres://USER@HOST:PORT/DB`
    /// or `nats://HOST:PORT` (several separated by commas).
    #[arg(long)]
    database_url: String,
    /// The PostgreSQL schema the tables live in.
    #[arg(long, default_value = "public")]
    schema: String,
    /// The NATS prefix the streams are named by (`<PREFIX>_EVENTS`, `<PREFIX>_SNAPSHOTS`).
    #[arg(long, default_value = "snap")]
    prefix: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the tables, or bring them up to date; safe to run again.
    Migrate {
        #[command(flatten)]
        target: Target,
    },
    /// Print the schema `migrate` applies.
    Schema {
        /// Which backend's schema.
        #[arg(long, value_enum)]
        backend: Backend,
    },
    /// Snapshots per type and schema version, and the aggregates furthest behind their
    /// latest snapshot.
    Stats {
        #[command(flatten)]
        target: Target,
        /// Only this aggregate type.
        #[arg(long = "type")]
        aggregate_type: Option<String>,
        /// How many of the aggregates furthest behind to list.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Delete the snapshots of a type (loads replay until new ones are written).
    Prune {
        #[command(flatten)]
        target: Target,
        /// The aggregate type to prune (required).
        #[arg(long = "type")]
        aggregate_type: String,
        /// Only snapshots with a schema version below this.
        #[arg(long)]
        schema_below: Option<u32>,
        /// Count what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

/// A failure reported as one line, with exit status 2.
struct Failure(String);

impl<E: std::error::Error> From<E> for Failure {
    fn from(error: E) -> Self {
        let mut line = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let _ = write!(line, ": {cause}");
            source = cause.source();
        }
        Self(line)
    }
}

fn fail(message: impl Into<String>) -> Failure {
    Failure(message.into())
}

enum Database {
    Sqlite(SqliteDatabase),
    Postgres(PostgresDatabase),
    Nats(NatsDatabase),
}

impl Database {
    fn admin(&self) -> &dyn SnapshotAdmin {
        match self {
            Self::Sqlite(db) => db,
            Self::Postgres(db) => db,
            Self::Nats(db) => db,
        }
    }

    fn snapshots(&self) -> Box<dyn SnapshotStore> {
        match self {
            Self::Sqlite(db) => Box::new(db.snapshot_store()),
            Self::Postgres(db) => Box::new(db.snapshot_store()),
            Self::Nats(db) => Box::new(db.snapshot_store()),
        }
    }
}

enum Url {
    Sqlite(PathBuf),
    Postgres(String),
    Nats(String),
}

/// Where the user-info of a URL ends, as a byte offset into `rest` (the URL after `://`):
/// the last `@` before the first `/`, else (a password holding a raw `/`) the last `@` of
/// all. Errs on hiding too much: an `@` in the path or query of a URL without user-info makes
/// the text before it look like user-info.
fn user_info_end(rest: &str) -> Option<usize> {
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    authority.rfind('@').or_else(|| rest.rfind('@'))
}

/// `url` for display: the password (`user:PASSWORD@`, or a `password=` query parameter) as
/// `***`, the user name kept; a `sqlite://` path, or text that is no URL, as it is.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    if url[..scheme_end].ends_with("sqlite") {
        return url.to_owned();
    }
    if let Some(servers) = nats_servers(url) {
        return servers
            .into_iter()
            .map(redact_url)
            .collect::<Vec<_>>()
            .join(",");
    }
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let mut shown = scheme.to_owned();
    let mut host_and_path = rest;
    if let Some(at) = user_info_end(rest) {
        let user_info = &rest[..at];
        match user_info.split_once(':') {
            Some((user, _password)) => {
                let _ = write!(shown, "{user}:***");
            }
            // A NATS URL's user-info without a colon is a token.
            None if is_nats(url) => shown.push_str("***"),
            None => shown.push_str(user_info),
        }
        shown.push('@');
        host_and_path = &rest[at + 1..];
    }
    let Some((path, query)) = host_and_path.split_once('?') else {
        shown.push_str(host_and_path);
        return shown;
    };
    shown.push_str(path);
    shown.push('?');
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _value)) if key == "password" => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    shown.push_str(&pairs.join("&"));
    shown
}

/// Whether `url` names a NATS server (`nats://`, `tls://`).
fn is_nats(url: &str) -> bool {
    url.starts_with("nats://") || url.starts_with("tls://")
}

/// The servers of a NATS URL list (`nats://a:4222,nats://b:4222`), when it has several.
fn nats_servers(url: &str) -> Option<Vec<&str>> {
    (is_nats(url) && url.contains(',')).then(|| url.split(',').map(str::trim).collect())
}

/// Percent-decodes `text` (and, for a query value, `+` as a space).
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (b'+', _) if plus_is_space => {
                decoded.push(b' ');
                i += 1;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The passwords a URL carries, as written and decoded: what [`redact_url`] hides.
fn secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Some(scheme_end) = url.find("://") else {
        return found;
    };
    if url[..scheme_end].ends_with("sqlite") {
        return found;
    }
    if let Some(servers) = nats_servers(url) {
        return servers.into_iter().flat_map(secrets).collect();
    }
    let mut rest = &url[scheme_end + 3..];
    if let Some(at) = user_info_end(rest) {
        let user_info = &rest[..at];
        let password = match user_info.split_once(':') {
            Some((_user, password)) => Some(password),
            None if is_nats(url) => Some(user_info),
            None => None,
        };
        if let Some(password) = password {
            found.push(password.to_owned());
            found.push(percent_decode(password, false));
        }
        rest = &rest[at + 1..];
    }
    if let Some((_path, query)) = rest.split_once('?') {
        for pair in query.split('&') {
            if let Some(("password", value)) = pair.split_once('=') {
                found.push(value.to_owned());
                found.push(percent_decode(value, true));
            }
        }
    }
    found.retain(|secret| !secret.is_empty());
    found
}

/// The URL an argument holds (`URL` or `--flag=URL`), if it holds one.
fn url_in_argument(argument: &str) -> Option<&str> {
    if !argument.contains("://") {
        return None;
    }
    let value = match argument.split_once('=') {
        Some((flag, value)) if flag.starts_with('-') && !flag.contains("://") => value,
        _ => argument,
    };
    Some(value)
}

/// `message` fit to print: each of `urls` shown by [`redact_url`], and their passwords
/// replaced by `***` wherever else they appear (an error that quotes part of a URL).
fn scrub(message: &str, urls: &[String]) -> String {
    let mut hidden: Vec<String> = urls.iter().flat_map(|url| secrets(url)).collect();
    // Longer first, so a password that contains another is hidden whole.
    hidden.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    let hide = |text: &str| {
        hidden.iter().fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
    };
    let mut shown = String::new();
    let mut rest = message;
    // The text between the URLs loses the passwords; the URLs go out redacted (a password
    // that is also the user name or scheme does not hide those).
    while let Some((at, url)) = urls
        .iter()
        .filter_map(|url| rest.find(url.as_str()).map(|at| (at, url)))
        .min_by_key(|&(at, url)| (at, std::cmp::Reverse(url.len())))
    {
        shown.push_str(&hide(&rest[..at]));
        shown.push_str(&redact_url(url));
        rest = &rest[at + url.len()..];
    }
    shown.push_str(&hide(rest));
    shown
}

fn parse_url(url: &str) -> Result<Url, Failure> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(fail(format!(
                "bad database URL {url:?}: no file path after sqlite://"
            )));
        }
        return Ok(Url::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Url::Postgres(url.to_owned()));
    }
    if is_nats(url) {
        return Ok(Url::Nats(url.to_owned()));
    }
    Err(fail(format!(
        "bad database URL {:?}: expected sqlite://PATH, postgres://... or nats://HOST:PORT",
        redact_url(url)
    )))
}

/// Opens an existing, migrated database (or, to migrate, any reachable one).
async fn open(target: &Target, migrate: bool) -> Result<Database, Failure> {
    match parse_url(&target.database_url)? {
        Url::Sqlite(path) => {
            if !migrate && !path.exists() {
                return Err(fail(format!("no database file at {}", path.display())));
            }
            let database = SqliteOptions::file(&path)
                .migrate(migrate)
                .open()
                .await
                .map_err(|e| {
                    fail(format!(
                        "cannot open {}: {}",
                        path.display(),
                        Failure::from(e).0
                    ))
                })?;
            if !migrate && database.schema_version().await? == 0 {
                return Err(fail(format!(
                    "{} has no snap-es schema; run `snap-es migrate` first",
                    path.display()
                )));
            }
            Ok(Database::Sqlite(database))
        }
        Url::Postgres(url) => {
            let database = PostgresOptions::new(&url)
                .schema(target.schema.clone())
                .application_name("snap-es-cli")
                .max_connections(2)
                .acquire_timeout(std::time::Duration::from_secs(5))
                .migrate(migrate)
                .connect()
                .await
                .map_err(|e| {
                    fail(format!(
                        "cannot connect to the database: {}",
                        Failure::from(e).0
                    ))
                })?;
            if !migrate {
                // A failed read is reported as it is, not taken for a schema without tables.
                let version = database.schema_version().await.map_err(|e| {
                    fail(format!(
                        "cannot read the snap-es schema version in schema {:?}: {}",
                        target.schema,
                        Failure::from(e).0
                    ))
                })?;
                if version == 0 {
                    return Err(fail(format!(
                        "schema {:?} has no snap-es tables; run `snap-es migrate` first",
                        target.schema
                    )));
                }
            }
            Ok(Database::Postgres(database))
        }
        Url::Nats(url) => {
            // Without `migrate`, the streams must exist: nothing is created by a look.
            let database = NatsOptions::new(&url)
                .prefix(target.prefix.clone())
                .migrate(migrate)
                .connect()
                .await
                .map_err(|e| {
                    fail(format!(
                        "cannot open the JetStream streams of prefix {:?}: {}",
                        target.prefix,
                        Failure::from(e).0
                    ))
                })?;
            Ok(Database::Nats(database))
        }
    }
}

/// A time as an operator reads it: RFC 3339 to the second, and how long ago.
fn when(at: time::OffsetDateTime, now: time::OffsetDateTime) -> String {
    let stamp = at
        .replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string());
    format!("{stamp} ({})", age(now - at))
}

/// `elapsed` in the largest whole unit: "12 s ago", "5 min ago", "3 h ago", "2 d ago".
fn age(elapsed: time::Duration) -> String {
    let seconds = elapsed.whole_seconds();
    match seconds {
        ..0 => "in the future".to_owned(),
        0..60 => format!("{seconds} s ago"),
        60..3_600 => format!("{} min ago", seconds / 60),
        3_600..86_400 => format!("{} h ago", seconds / 3_600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

/// A table with a rule under its header and the columns `numbers` aligned right.
fn table(header: &[&str], rows: Vec<Vec<String>>, numbers: &[usize]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::ASCII_HORIZONTAL_ONLY)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for &index in numbers {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    table.to_string()
}

fn stats_table(stats: &[SnapshotTypeStats], lag: &[SnapshotLag]) -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut out = String::new();
    if stats.is_empty() {
        out.push_str("(no snapshots)\n");
    } else {
        let rows = stats
            .iter()
            .map(|s| {
                vec![
                    s.aggregate_type.clone(),
                    s.schema_version.to_string(),
                    s.snapshots.to_string(),
                    s.total_state_bytes.to_string(),
                    s.largest_state_bytes.to_string(),
                    when(s.oldest, now),
                    when(s.newest, now),
                ]
            })
            .collect();
        let header = [
            "type",
            "schema",
            "snapshots",
            "state bytes",
            "largest",
            "oldest",
            "newest",
        ];
        let _ = writeln!(out, "{}", table(&header, rows, &[1, 2, 3, 4]));
    }
    let _ = writeln!(out, "\nfurthest behind their latest snapshot:");
    if lag.is_empty() {
        out.push_str("(no events)\n");
    } else {
        let rows = lag
            .iter()
            .map(|l| {
                vec![
                    l.aggregate_type.clone(),
                    l.aggregate_id.to_string(),
                    l.head.to_string(),
                    l.snapshot_version.to_string(),
                    l.behind().to_string(),
                ]
            })
            .collect();
        let header = ["type", "aggregate", "events", "snapshot", "behind"];
        let _ = writeln!(out, "{}", table(&header, rows, &[2, 3, 4]));
    }
    out
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Schema { backend } => match backend {
            Backend::Sqlite => {
                for (name, sql) in snap_es::sqlite::MIGRATIONS {
                    println!("-- {name}\n{sql}");
                }
            }
            Backend::Postgres => {
                for (version, description, sql) in snap_es::postgres::MIGRATIONS {
                    println!("-- {version} {description}\n{sql}");
                }
            }
        },
        Command::Migrate { target } => {
            open(&target, true).await?;
            println!("migrated {}", redact_url(&target.database_url));
        }
        Command::Stats {
            target,
            aggregate_type,
            limit,
            json,
        } => {
            let database = open(&target, false).await?;
            let admin = database.admin();
            let stats = admin.snapshot_stats(aggregate_type.as_deref()).await?;
            let lag = admin.snapshot_lag(aggregate_type.as_deref(), limit).await?;
            if json {
                let lag: Vec<_> = lag
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "aggregate_type": l.aggregate_type,
                            "aggregate_id": l.aggregate_id,
                            "head": l.head,
                            "snapshot_version": l.snapshot_version,
                            "behind": l.behind(),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({ "snapshots": stats, "behind": lag })
                );
            } else {
                print!("{}", stats_table(&stats, &lag));
            }
        }
        Command::Prune {
            target,
            aggregate_type,
            schema_below,
            dry_run,
            json,
        } => {
            let database = open(&target, false).await?;
            let count = if dry_run {
                database
                    .admin()
                    .count_snapshots_by_type(&aggregate_type, schema_below)
                    .await?
            } else {
                database
                    .snapshots()
                    .delete_snapshots_by_type(&aggregate_type, schema_below)
                    .await?
            };
            let bound =
                schema_below.map_or_else(String::new, |n| format!(" below schema version {n}"));
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "aggregate_type": aggregate_type,
                        "schema_below": schema_below,
                        "dry_run": dry_run,
                        "snapshots": count,
                    })
                );
            } else if dry_run {
                println!(
                    "would remove {count} snapshots of {aggregate_type}{bound} (dry run: nothing removed)"
                );
            } else {
                println!("removed {count} snapshots of {aggregate_type}{bound}");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // The URLs on the command line, whose passwords no message may show.
    let urls: Vec<String> = std::env::args_os()
        .skip(1)
        .filter_map(|argument| url_in_argument(&argument.to_string_lossy()).map(str::to_owned))
        .collect();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            // clap's message, on one line: the error and, after a colon, what it names.
            let rendered = error.to_string();
            let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut line = lines
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ")
                .to_owned();
            if line.ends_with(':')
                && let Some(detail) = lines.next()
            {
                line = format!("{line} {detail}");
            }
            eprintln!("snap-es: {} (see `snap-es --help`)", scrub(&line, &urls));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("snap-es: cannot start a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(line)) => {
            eprintln!("snap-es: {}", scrub(&line, &urls));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{age, redact_url, scrub, secrets, stats_table, url_in_argument, when};

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgresql://localhost/db?sslmode=require",
            "postgres://[::1]:5432/db",
            "postgres://h:5432/db",
            "not a url",
        ] {
            assert_eq!(redact_url(url), url);
            assert!(secrets(url).is_empty(), "{url}");
        }
    }

    #[test]
    fn the_password_is_hidden_and_the_user_kept() {
        for (url, shown) in [
            (
                "postgres://postgres:s3cret@127.0.0.1:5432/test",
                "postgres://postgres:***@127.0.0.1:5432/test",
            ),
            ("postgres://u:@h/db", "postgres://u:***@h/db"),
            ("mysql://u:pw@localhost/x", "mysql://u:***@localhost/x"),
            // `@` percent-encoded, or raw, in the password.
            (
                "postgres://u:p%40ss@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u:p@ss@h:5432/db", "postgres://u:***@h:5432/db"),
            // A raw `/`, `?` or `:` in the password.
            ("postgres://u:a/b@h/db", "postgres://u:***@h/db"),
            ("postgres://u:a?b:c@h/db", "postgres://u:***@h/db"),
            // An `@` after the host is not user-info.
            (
                "postgres://u:pw@h/db?sslrootcert=/certs/a@b.pem",
                "postgres://u:***@h/db?sslrootcert=/certs/a@b.pem",
            ),
            // The password as a query parameter.
            (
                "postgres://u@h/db?sslmode=disable&password=pw&application_name=x",
                "postgres://u@h/db?sslmode=disable&password=***&application_name=x",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn sqlite_paths_are_untouched() {
        for url in [
            "sqlite:///var/data/user:pw@host.db",
            "sqlite://relative/a@b.db",
            "sqlite://",
        ] {
            assert_eq!(redact_url(url), url);
            assert!(secrets(url).is_empty(), "{url}");
        }
    }

    #[test]
    fn the_secrets_are_the_password_as_written_and_decoded() {
        assert_eq!(
            secrets("postgres://u:p%40ss@h/db"),
            ["p%40ss", "p@ss"].map(String::from)
        );
        assert_eq!(
            secrets("postgres://u@h/db?password=a+b%21"),
            ["a+b%21", "a b!"].map(String::from)
        );
        assert!(secrets("postgres://u:@h/db").is_empty());
    }

    #[test]
    fn a_url_argument_is_found_with_or_without_its_flag() {
        assert_eq!(
            url_in_argument("--database-url=postgres://u:pw@h/db"),
            Some("postgres://u:pw@h/db")
        );
        assert_eq!(
            url_in_argument("postgres://u:pw@h/db?a=b"),
            Some("postgres://u:pw@h/db?a=b")
        );
        assert_eq!(url_in_argument("--schema=public"), None);
        assert_eq!(url_in_argument("stats"), None);
    }

    #[test]
    fn a_message_loses_the_passwords_of_the_urls_given() {
        let urls = [
            "postgres://postgres:pw%21@h/db".to_owned(),
            "sqlite:///tmp/a.db".to_owned(),
        ];
        assert_eq!(
            scrub(
                "unexpected argument 'postgres://postgres:pw%21@h/db' found",
                &urls
            ),
            "unexpected argument 'postgres://postgres:***@h/db' found"
        );
        assert_eq!(
            scrub("password authentication failed: pw! and pw%21", &urls),
            "password authentication failed: *** and ***"
        );
        // A password that is also the user name hides neither in the URL shown.
        let same = ["postgres://postgres:postgres@h/db".to_owned()];
        assert_eq!(
            scrub("cannot open postgres://postgres:postgres@h/db", &same),
            "cannot open postgres://postgres:***@h/db"
        );
        assert_eq!(
            scrub("no database file at /tmp/a.db", &urls),
            "no database file at /tmp/a.db"
        );
    }

    #[test]
    fn times_read_as_rfc_3339_and_an_age() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_796_205_600).expect("a time")
            + time::Duration::microseconds(753_632);
        assert_eq!(
            when(now - time::Duration::minutes(5), now),
            "2026-12-02T09:55:00Z (5 min ago)"
        );
        assert_eq!(age(time::Duration::seconds(59)), "59 s ago");
        assert_eq!(age(time::Duration::hours(3)), "3 h ago");
        assert_eq!(age(time::Duration::days(2)), "2 d ago");
        assert_eq!(age(time::Duration::seconds(-1)), "in the future");
    }

    #[test]
    fn long_type_names_keep_the_columns_aligned() {
        let at = time::OffsetDateTime::now_utc();
        let long = "BillingAccountWithAVeryLongTypeName".to_owned();
        let stats = [
            snap_es::SnapshotTypeStats::new(long.clone(), 1, 3, 300, 120, at, at),
            snap_es::SnapshotTypeStats::new("User".into(), 12, 1, 40, 40, at, at),
        ];
        let lag = [snap_es::SnapshotLag::new(
            long,
            snap_es::AggregateId::parse("account 7").expect("an id"),
            9,
            5,
        )];
        let text = stats_table(&stats, &lag);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("BillingAccount") || l.contains("User"))
            .collect();
        assert_eq!(rows.len(), 3, "{text}");
        // The schema column ends at the same place on every row of the first table.
        let end = |row: &str, cell: &str| row.find(cell).map(|at| at + cell.len());
        assert_eq!(end(rows[0], " 1 "), end(rows[1], " 12 "), "{text}");
        assert!(text.contains("s ago)"), "{text}");
    }
}
