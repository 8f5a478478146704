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

impl Config {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut backend = "all".to_owned();
        let mut quick = false;
        let mut event_counts = None;
        let mut out = PathBuf::from("target/bench");
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--backend" => backend.clone_from(rest.next().ok_or("--backend needs a value")?),
                "--quick" => quick = true,
                "--events" => {
                    let list = rest.next().ok_or("--events needs a list, e.g. 100,1000")?;
                    let counts = list
                        .split(',')
                        .map(|n| {
                            n.trim()
                                .replace('_', "")
                                .parse::<u64>()
                                .ok()
                                .filter(|n| *n > 0)
                        })
                        .collect::<Option<Vec<u64>>>()
                        .ok_or_else(|| {
                            format!("--events {list:?}: expected positive whole numbers")
                        })?;
                    event_counts = Some(counts);
                }
                "--out" => out = rest.next().ok_or("--out needs a directory")?.into(),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        let backends = match backend.as_str() {
            // The in-memory run leaves a heap of freed small blocks behind that slows the
            // allocations of whatever runs after it, so it runs last.
            "all" => vec![
                "sqlite".into(),
                "postgres".into(),
                "nats".into(),
                "memory".into(),
            ],
            "memory" | "sqlite" | "postgres" | "nats" => vec![backend],
            other => {
                return Err(format!(
                    "unknown backend `{other}` (memory, sqlite, postgres, nats, all)"
                ));
            }
        };
        let event_counts = event_counts.unwrap_or_else(|| {
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
            out,
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
        Err(message) => {
            eprintln!("snap-bench: {message}");
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
