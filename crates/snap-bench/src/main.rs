//! The snap-es benchmark, run by `cargo xtask bench` (always in `--release`).
//!
//! Every figure is a median of many samples, and every backend is measured next to a floor
//! taken in the same run on the same machine: a bare prepared primary-key SELECT of the same
//! snapshot row on a dedicated connection. Absolute times drift on shared machines; the ratios
//! to the floor do not drift much, so the targets are stated as ratios where they can be.
//!
//! ```text
//! snap-bench [--backend memory|sqlite|postgres|nats|all] [--events 100,1000,...] [--quick] [--out DIR]
//! ```
//!
//! PostgreSQL is reached through `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and uses its own schema, `snap_bench`, which is
//! dropped and recreated on every run.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod aggregate;
mod chart;
mod commit_floor;
mod floor;
mod head;
mod measure;
mod nats;
mod replay;
mod report;
mod saves;
mod scenario;

use report::Report;

/// What to measure, from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    backends: Vec<String>,
    /// Fewer samples and a smaller history: a smoke run, not a measurement.
    pub(crate) quick: bool,
    /// The stream lengths of the load table.
    pub(crate) event_counts: Vec<u64>,
    out: PathBuf,
    /// The command that reproduces the run, for the report.
    pub(crate) command: String,
}

/// The benchmark's arguments.
#[derive(Debug, clap::Parser)]
#[command(
    name = "snap-bench",
    about = "The snap-es benchmark: medians against floors measured in the same run."
)]
struct Args {
    /// The backend to measure.
    #[arg(long, value_enum, default_value_t = BackendArg::All)]
    backend: BackendArg,
    /// The stream lengths of the load table, e.g. 100,1000 (default 100,1000,10000,100000;
    /// 100,1000 with --quick).
    #[arg(long, value_delimiter = ',', value_parser = parse_count)]
    events: Option<Vec<u64>>,
    /// Fewer samples and a smaller history: a smoke run, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Where the report goes.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    Memory,
    Sqlite,
    Postgres,
    Nats,
    All,
}

/// A positive whole number; `_` may group digits.
fn parse_count(text: &str) -> Result<u64, String> {
    text.trim()
        .replace('_', "")
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a positive whole number"))
}

impl Config {
    fn parse(args: &[String]) -> Result<Self, clap::Error> {
        use clap::Parser as _;
        let parsed = Args::try_parse_from(
            std::iter::once("snap-bench").chain(args.iter().map(String::as_str)),
        )?;
        let backends = match parsed.backend {
            // The in-memory run leaves a heap of freed small blocks behind that slows the
            // allocations of whatever runs after it, so it runs last.
            BackendArg::All => vec![
                "sqlite".into(),
                "postgres".into(),
                "nats".into(),
                "memory".into(),
            ],
            BackendArg::Memory => vec!["memory".into()],
            BackendArg::Sqlite => vec!["sqlite".into()],
            BackendArg::Postgres => vec!["postgres".into()],
            BackendArg::Nats => vec!["nats".into()],
        };
        let quick = parsed.quick;
        let event_counts = parsed.events.unwrap_or_else(|| {
            if quick {
                vec![100, 1_000]
            } else {
                vec![100, 1_000, 10_000, 100_000]
            }
        });
        let command = std::iter::once("cargo xtask bench")
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Self {
            backends,
            quick,
            event_counts,
            out: parsed.out,
            command,
        })
    }

    /// Events in the long stream: 100,000, or 2,000 in a quick run.
    pub(crate) fn long_stream(&self) -> u64 {
        if self.quick { 2_000 } else { 100_000 }
    }

    /// How many samples for an operation whose single run takes about `each`.
    pub(crate) fn samples(&self, each: Duration) -> usize {
        let budget = if self.quick {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(2)
        };
        let n = budget.as_nanos() / each.as_nanos().max(1);
        usize::try_from(n).unwrap_or(usize::MAX).clamp(5, 20_000)
    }
}

#[allow(
    clippy::print_stderr,
    reason = "the benchmark reports progress on stderr"
)]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match Config::parse(&args) {
        Ok(config) => config,
        Err(error) => {
            // clap's help and version exit 0, a bad argument 2.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("snap-bench: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&config)) {
        Ok(report) => {
            if let Err(e) = report.write(&config.out) {
                eprintln!("snap-bench: cannot write the report: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("snap-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &Config) -> Result<Report, String> {
    let mut report = Report::new(config.quick, config.command.clone());
    for backend in &config.backends {
        let started = Instant::now();
        match backend.as_str() {
            "memory" => scenario::memory(config, &mut report).await?,
            "sqlite" => scenario::sqlite(config, &mut report).await?,
            "postgres" => scenario::postgres(config, &mut report).await?,
            "nats" => nats::nats(config, &mut report).await?,
            _ => unreachable!("parsed above"),
        }
        let mut line = String::new();
        let _ = write!(line, "{backend} measured in {:.1?}", started.elapsed());
        Report::progress(&line);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::Config;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments_are_parsed_by_clap() {
        let config = parse(&["--backend", "sqlite", "--events", "100,1_000", "--quick"])
            .expect("valid arguments");
        assert_eq!(config.backends, ["sqlite"]);
        assert_eq!(config.event_counts, [100, 1_000]);
        assert!(config.quick);
        assert_eq!(
            config.command,
            "cargo xtask bench --backend sqlite --events 100,1_000 --quick"
        );
        let all = parse(&[]).expect("the defaults");
        assert_eq!(all.backends, ["sqlite", "postgres", "nats", "memory"]);
        assert_eq!(all.event_counts, [100, 1_000, 10_000, 100_000]);
        for bad in [
            &["--events", "0"][..],
            &["--backend", "oracle"],
            &["--fast"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
