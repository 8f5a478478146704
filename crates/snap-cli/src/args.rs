//! The command tree, as clap parses it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(version, about = "Operate snap-es snapshot and event stores.")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where the snapshots and events are.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// `sqlite://PATH` (`sqlite:///abs/path` for an absolute path), `postgres://USER@HOST:PORT/DB`
    /// or `nats://HOST:PORT` (several separated by commas).
    #[arg(long, env = "SNAP_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: String,
    /// The PostgreSQL schema the tables live in.
    #[arg(long, default_value = "public")]
    pub(crate) schema: String,
    /// The NATS prefix the streams are named by (`<PREFIX>_EVENTS`, `<PREFIX>_SNAPSHOTS`).
    #[arg(long, default_value = "snap")]
    pub(crate) prefix: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// How a long job over many aggregates runs.
#[derive(Debug, clap::Args)]
pub(crate) struct Job {
    /// The aggregate type (one this binary registers).
    #[arg(long = "type")]
    pub(crate) aggregate_type: String,
    /// Only these aggregates (repeat the flag for several).
    #[arg(long = "id")]
    pub(crate) ids: Vec<String>,
    /// Aggregates worked on at once (on PostgreSQL, at most 32 connections are opened).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) concurrency: u16,
    /// At most this many aggregates per second (no limit by default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_rate: Option<u32>,
    /// Start after this aggregate id (ids run in the order of their text).
    #[arg(long, conflicts_with = "ids")]
    pub(crate) after: Option<String>,
    /// Keep the position in this file: a run starts after the id it holds and writes it as
    /// it goes, so an interrupted run resumes where it stopped; removed when the run ends.
    #[arg(long, conflicts_with = "ids")]
    pub(crate) cursor: Option<PathBuf>,
    /// JSON on standard output instead of progress and a sentence.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the tables, or bring them up to date; safe to run again.
    Migrate {
        #[command(flatten)]
        target: Target,
        /// JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Print the schema `migrate` applies.
    Schema {
        /// Which backend's schema.
        #[arg(long, value_enum)]
        backend: Backend,
        /// JSON (each migration's version, name and SQL) instead of the SQL.
        #[arg(long)]
        json: bool,
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
    /// Write a fresh snapshot of every aggregate of a type (or of the ids given), each from a
    /// full replay of its events: after a schema bump or a fix in `apply`.
    Rebuild {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        job: Job,
    },
    /// Compare snapshots with a full replay; exit status 1 when one differs.
    Verify {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        job: Job,
        /// Only this many aggregates, chosen at random.
        #[arg(long, conflicts_with_all = ["ids", "cursor", "after"])]
        sample: Option<usize>,
    },
    /// One aggregate: its snapshot, its stream's head, the lag, and how the snapshot differs
    /// from a replay.
    Inspect {
        #[command(flatten)]
        target: Target,
        /// The aggregate type.
        #[arg(long = "type")]
        aggregate_type: String,
        /// The aggregate id.
        #[arg(long)]
        id: String,
        /// JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Lag and snapshot age percentiles per type; exit status 1 when a threshold is passed.
    Health {
        #[command(flatten)]
        target: Target,
        /// Only this aggregate type.
        #[arg(long = "type")]
        aggregate_type: Option<String>,
        /// The percentile the thresholds apply to.
        #[arg(long, default_value_t = 99, value_parser = clap::value_parser!(u8).range(1..=100))]
        percentile: u8,
        /// Unhealthy when the percentile of events after the latest snapshot is above this.
        #[arg(long)]
        max_lag: Option<u64>,
        /// Unhealthy when the percentile of snapshot ages is above this (`90s`, `15m`, `6h`, `2d`).
        #[arg(long, value_parser = parse_duration)]
        max_age: Option<Duration>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `90s`, `15m`, `6h`, `2d` or a number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 6h or 2d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?} (s, m, h or d)")),
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_mins(15)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_hours(48)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("h").is_err());
    }
}
