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
//! ```
//!
//! It orchestrates cargo; `schema` and `migrate` call the backends' own migration code.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports on its terminal"
)]

use std::env;
use std::process::{Command, ExitCode};
use std::time::Instant;

mod guide;
mod release;

const HELP: &str = "\
usage: cargo xtask <command>

commands:
  ci            everything CI checks: fmt --check, clippy -D warnings (all targets and
                features), the test suite, docs with warnings denied, the example,
                a quick debug run of the benchmark
  test [ARGS]   the whole workspace test suite, all features; ARGS are passed to cargo test
  fmt           cargo fmt on the workspace
  doc           cargo doc with warnings denied
  bench [--backend <memory|sqlite|postgres|all>] [--events N,N,..] [--quick] [--out <DIR>]
                the benchmark in release: medians against floors measured in the same run,
                written to DIR/report.md, DIR/report.json and the chart DIR/report.svg
                (default target/bench)
  guide         follow docs/getting-started.md literally in $TMPDIR/snap-es-guide-PID: cargo new,
                cargo add, the guide's code, cargo run in memory and on SQLite
  soak [ARGS]   the fault and load cases ten times longer and 1,000 cases per property
                test, in release (SNAP_SOAK=10, SNAP_PROPTEST_CASES=1000)
  schema --backend <memory|sqlite|postgres>
                print the schema a backend's migrate() applies
  migrate --database-url <URL> [--schema <NAME>]
                apply the schema; URL is sqlite://PATH (sqlite:///abs/path for an absolute
                path) or postgres://USER@HOST:PORT/DB; --schema picks the PostgreSQL schema
  help          this text
";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (command, rest) = args
        .split_first()
        .map_or(("help", &[][..]), |(c, r)| (c.as_str(), r));
    let result = match command {
        "ci" => ci(),
        "test" => test(rest),
        "fmt" => cargo(&["fmt", "--all"], &[]),
        "doc" => doc(),
        "bench" => bench(rest),
        "guide" => guide::guide(),
        "soak" => soak(rest),
        "schema" => flag(rest, "--backend").and_then(|backend| schema(&backend)),
        "package" => release::package(),
        "migrate" => flag(rest, "--database-url").and_then(|url| {
            let schema = flag(rest, "--schema").ok();
            migrate(&url, schema.as_deref())
        }),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{HELP}")),
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

/// The value of `--name VALUE` or `--name=VALUE`.
fn flag(args: &[String], name: &str) -> Result<String> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == name {
            return args
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"));
        }
        if let Some(value) = arg
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
        {
            return Ok(value.to_owned());
        }
    }
    Err(format!("missing {name}\n\n{HELP}"))
}

fn schema(backend: &str) -> Result {
    match backend {
        "memory" => {
            println!("-- the memory backend keeps its data in process memory and has no schema");
            Ok(())
        }
        "sqlite" => {
            for (name, sql) in snap_sqlite::MIGRATIONS {
                println!("-- {name}\n{sql}");
            }
            Ok(())
        }
        "postgres" => Err("the PostgreSQL backend is not built yet".to_owned()),
        other => Err(format!(
            "unknown backend {other:?}: expected memory or sqlite"
        )),
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
    let steps: [(&str, &dyn Fn() -> Result); 10] = [
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
