//! `snap-es`, the operator tool: apply or print the schema, see snapshot health, prune old
//! snapshots, on `sqlite://PATH` and `postgres://...` databases.
//!
//! ```text
//! snap-es migrate --database-url URL [--schema NAME]
//! snap-es schema --backend sqlite|postgres
//! snap-es stats --database-url URL [--schema NAME] [--type T] [--limit N] [--json]
//! snap-es prune --database-url URL [--schema NAME] --type T [--schema-below N] [--dry-run] [--json]
//! ```
//!
//! Exit status 0 on success, 2 with one line on standard error for a bad argument, a bad URL,
//! an unreachable database or a database without the snap-es schema.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports on its terminal"
)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
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
    /// `sqlite://PATH` (`sqlite:///abs/path` for an absolute path) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long)]
    database_url: String,
    /// The PostgreSQL schema the tables live in.
    #[arg(long, default_value = "public")]
    schema: String,
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
}

impl Database {
    fn admin(&self) -> &dyn SnapshotAdmin {
        match self {
            Self::Sqlite(db) => db,
            Self::Postgres(db) => db,
        }
    }

    fn snapshots(&self) -> Box<dyn SnapshotStore> {
        match self {
            Self::Sqlite(db) => Box::new(db.snapshot_store()),
            Self::Postgres(db) => Box::new(db.snapshot_store()),
        }
    }
}

enum Url {
    Sqlite(PathBuf),
    Postgres(String),
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
    Err(fail(format!(
        "bad database URL {url:?}: expected sqlite://PATH or postgres://..."
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
            if !migrate && database.schema_version().await.unwrap_or(0) == 0 {
                return Err(fail(format!(
                    "schema {:?} has no snap-es tables; run `snap-es migrate` first",
                    target.schema
                )));
            }
            Ok(Database::Postgres(database))
        }
    }
}

fn stats_table(stats: &[SnapshotTypeStats], lag: &[SnapshotLag]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>6} {:>10} {:>14} {:>12}  {:<25} {:<25}",
        "type", "schema", "snapshots", "state bytes", "largest", "oldest", "newest"
    );
    for s in stats {
        let _ = writeln!(
            out,
            "{:<24} {:>6} {:>10} {:>14} {:>12}  {:<25} {:<25}",
            s.aggregate_type,
            s.schema_version,
            s.snapshots,
            s.total_state_bytes,
            s.largest_state_bytes,
            s.oldest.to_string(),
            s.newest.to_string()
        );
    }
    if stats.is_empty() {
        out.push_str("(no snapshots)\n");
    }
    let _ = writeln!(out, "\nfurthest behind their latest snapshot:");
    let _ = writeln!(
        out,
        "{:<24} {:<36} {:>10} {:>10} {:>8}",
        "type", "aggregate", "events", "snapshot", "behind"
    );
    for l in lag {
        let _ = writeln!(
            out,
            "{:<24} {:<36} {:>10} {:>10} {:>8}",
            l.aggregate_type,
            l.aggregate_id,
            l.head,
            l.snapshot_version,
            l.behind()
        );
    }
    if lag.is_empty() {
        out.push_str("(no events)\n");
    }
    out.lines()
        .map(str::trim_end)
        .fold(String::new(), |mut all, line| {
            all.push_str(line);
            all.push('\n');
            all
        })
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
            println!("migrated {}", target.database_url);
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
            eprintln!("snap-es: {line} (see `snap-es --help`)");
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
            eprintln!("snap-es: {line}");
            ExitCode::from(2)
        }
    }
}
