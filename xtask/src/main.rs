//! Project automation, run as `cargo xtask <command>`.
//!
//! ```text
//! cargo xtask ci            fmt check, clippy -D warnings, tests, docs, the example: what CI runs
//! cargo xtask test [ARGS]   the whole workspace test suite; ARGS go to `cargo test`
//! cargo xtask fmt           format the workspace
//! cargo xtask doc           build the docs with warnings denied
//! cargo xtask bench [--backend B] [--quick] [--out DIR]   the benchmark, in release
//! cargo xtask guide        follow docs/getting-started.md literally, from `cargo new` to SQLite
//! cargo xtask soak [ARGS]   fault and load cases 10x longer, 1,000 property cases, in release
//! cargo xtask schema --backend <memory|sqlite|postgres>   print a backend's schema
//! cargo xtask migrate --database-url URL [--schema S]    apply it (sqlite://PATH, postgres://...)
//! cargo xtask package       package the published crates, each built from its package alone
//! ```
//!
//! It orchestrates cargo; `schema` and `migrate` call the backends' own migration code.
//! Arguments are parsed by clap (`cargo xtask help`).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports on its terminal"
)]

use std::env;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use std::time::Instant;

mod guide;
mod release;

/// Project automation, run as `cargo xtask <command>`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Everything CI checks: fmt --check, clippy -D warnings (all targets and features), the
    /// test suite, docs with warnings denied, the examples, the getting-started guide, a quick
    /// debug run of the benchmark, the MSRV, licences and sources, packaging.
    Ci,
    /// The whole workspace test suite, all features; ARGS are passed to cargo test.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// cargo fmt on the workspace.
    Fmt,
    /// cargo doc with warnings denied.
    Doc,
    /// The benchmark in release: medians against floors measured in the same run, written to
    /// DIR/report.md, DIR/report.json and the chart DIR/report.svg (default target/bench).
    /// ARGS go to snap-bench: [--backend memory|sqlite|postgres|nats|all] [--events N,N,..]
    /// [--quick] [--out DIR].
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Follow docs/getting-started.md literally in $TMPDIR/snap-es-guide-PID: cargo new, cargo
    /// add, the guide's code, cargo run in memory and on SQLite.
    Guide,
    /// The fault and load cases ten times longer and 1,000 cases per property test, in
    /// release; ARGS are passed to cargo test.
    Soak {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the schema a backend's `migrate()` applies.
    Schema {
        /// The backend.
        #[arg(long, value_enum)]
        backend: SchemaBackend,
    },
    /// Apply the schema: `sqlite://PATH` (`sqlite:///abs/path` for an absolute path) or
    /// `postgres://USER@HOST:PORT/DB`.
    Migrate {
        /// The database.
        #[arg(long)]
        database_url: String,
        /// The PostgreSQL schema.
        #[arg(long)]
        schema: Option<String>,
    },
    /// Package the published crates, each verified by building it from its package alone.
    Package,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaBackend {
    Memory,
    Sqlite,
    Postgres,
}

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Ci => ci(),
        Task::Test { args } => test(&args),
        Task::Fmt => cargo(&["fmt", "--all"], &[]),
        Task::Doc => doc(),
        Task::Bench { args } => bench(&args),
        Task::Guide => guide::guide(),
        Task::Soak { args } => soak(&args),
        Task::Schema { backend } => {
            schema(backend);
            Ok(())
        }
        Task::Package => release::package(),
        Task::Migrate {
            database_url,
            schema,
        } => migrate(&database_url, schema.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `cargo ARGS` with extra environment variables, failing on a non-zero exit.
fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn schema(backend: SchemaBackend) {
    match backend {
        SchemaBackend::Memory => {
            println!("-- the memory backend keeps its data in process memory and has no schema");
        }
        SchemaBackend::Sqlite => {
            for (name, sql) in snap_sqlite::MIGRATIONS {
                println!("-- {name}\n{sql}");
            }
        }
        SchemaBackend::Postgres => {
            for (version, description, sql) in snap_postgres::MIGRATIONS {
                println!("-- {version} {description}\n{sql}");
            }
        }
    }
}

fn migrate(url: &str, schema: Option<&str>) -> Result {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start a runtime: {e}"))?;
    let failed = |what: &str, e: &dyn std::error::Error| {
        let cause = e.source().map(|s| format!(": {s}")).unwrap_or_default();
        format!("{what} failed: {e}{cause}")
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut options = snap_postgres::PostgresOptions::new(url);
        if let Some(schema) = schema {
            options = options.schema(schema);
        }
        return runtime.block_on(async {
            let database = options
                .connect()
                .await
                .map_err(|e| failed("connect and migrate", &e))?;
            let version = database
                .schema_version()
                .await
                .map_err(|e| failed("reading the schema version", &e))?;
            println!("{url} schema {:?}: at version {version}", database.schema());
            Ok(())
        });
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .filter(|path| !path.is_empty())
        .ok_or_else(|| {
            format!("unsupported database URL {url:?}: expected sqlite://PATH or postgres://...")
        })?;
    if schema.is_some() {
        return Err("--schema applies to PostgreSQL only".to_owned());
    }
    runtime.block_on(async {
        let database = snap_sqlite::SqliteDatabase::open(path)
            .await
            .map_err(|e| failed("open and migrate", &e))?;
        let version = database
            .schema_version()
            .await
            .map_err(|e| failed("reading the schema version", &e))?;
        println!("{path}: schema at version {version}");
        Ok(())
    })
}

fn test(extra: &[String]) -> Result {
    let mut args = vec!["test", "--workspace", "--all-features"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args, &[])
}

/// The test suite as CI runs it: the PostgreSQL and NATS tests must reach a server, never
/// skip.
fn ci_test() -> Result {
    cargo(
        &["test", "--workspace", "--all-features"],
        &[("SNAP_REQUIRE_POSTGRES", "1"), ("SNAP_REQUIRE_NATS", "1")],
    )
}

/// The fault and load cases ten times longer, and the property tests with 1,000 cases each,
/// in release: `cargo xtask soak [ARGS]`, ARGS passed to `cargo test`.
fn soak(extra: &[String]) -> Result {
    let mut args = vec!["test", "--release", "--workspace", "--all-features"];
    args.extend(extra.iter().map(String::as_str));
    cargo(
        &args,
        &[
            ("SNAP_SOAK", "10"),
            ("SNAP_PROPTEST_CASES", "1000"),
            ("SNAP_REQUIRE_POSTGRES", "1"),
            ("SNAP_REQUIRE_NATS", "1"),
        ],
    )
}

/// The benchmark, always in release: `cargo xtask bench [--backend B] [--quick] [--out DIR]`.
fn bench(extra: &[String]) -> Result {
    let mut args = vec!["run", "--release", "--package", "snap-bench", "--"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args, &[])
}

fn doc() -> Result {
    cargo(
        &["doc", "--workspace", "--all-features", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )
}

fn ci() -> Result {
    let started = Instant::now();
    let steps: [(&str, &dyn Fn() -> Result); 11] = [
        ("format", &|| cargo(&["fmt", "--all", "--check"], &[])),
        ("lint", &|| {
            cargo(
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            )
        }),
        // The operator commands build with any one backend (the facade's `cli` feature
        // enables those of the backends the application enables).
        ("cli backends", &|| {
            for backend in ["sqlite", "postgres", "nats"] {
                cargo(
                    &[
                        "clippy",
                        "--package",
                        "snap-cli",
                        "--no-default-features",
                        "--features",
                        backend,
                        "--",
                        "-D",
                        "warnings",
                    ],
                    &[],
                )?;
            }
            Ok(())
        }),
        ("test", &ci_test),
        ("doc", &doc),
        ("examples", &|| {
            for example in ["bank_account", "decider"] {
                cargo(&["run", "--package", "snap-es", "--example", example], &[])?;
            }
            Ok(())
        }),
        ("getting-started guide", &guide::guide),
        // A short debug run keeps the benchmark working and checks, on every backend, that
        // a snapshot load equals the full replay; the figures come from `cargo xtask bench`.
        ("bench smoke", &|| {
            cargo(
                &[
                    "run",
                    "--package",
                    "snap-bench",
                    "--",
                    "--quick",
                    "--out",
                    "target/bench-smoke",
                ],
                &[("SNAP_REQUIRE_POSTGRES", "1"), ("SNAP_REQUIRE_NATS", "1")],
            )
        }),
        ("msrv", &release::msrv),
        ("licences and sources", &release::deny),
        ("package", &release::package),
    ];
    for (name, step) in steps {
        let step_started = Instant::now();
        step().map_err(|e| format!("ci step {name:?} failed: {e}"))?;
        eprintln!(
            "xtask: ci step {name:?} passed in {:.1?}",
            step_started.elapsed()
        );
    }
    eprintln!("xtask: ci passed in {:.1?}", started.elapsed());
    Ok(())
}
