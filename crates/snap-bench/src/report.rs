//! The report: markdown on stdout and in `DIR/report.md`, the same figures as JSON in
//! `DIR/report.json`, and the load chart in `DIR/report.svg`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::measure::Samples;

/// What a measurement should reach, judged in the same run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// Reported for scale only.
    None,
    /// A median within this multiple of the row's floor.
    WithinFloor(f64),
    /// A rate (one over the median) at least this multiple of the floor's.
    RateAtLeast(f64),
}

/// One measured row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    backend: &'static str,
    name: String,
    median: Duration,
    p95: Duration,
    samples: usize,
    floor: Option<(&'static str, Duration)>,
    target: Target,
}

impl Row {
    pub(crate) fn new(backend: &'static str, name: impl Into<String>, samples: &Samples) -> Self {
        Self {
            backend,
            name: name.into(),
            median: samples.median(),
            p95: samples.p95(),
            samples: samples.len(),
            floor: None,
            target: Target::None,
        }
    }

    /// Compares the row with a floor measured in the same run.
    pub(crate) fn against(mut self, floor: &'static str, median: Duration) -> Self {
        self.floor = Some((floor, median));
        self
    }

    pub(crate) fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    fn ratio(&self) -> Option<f64> {
        self.floor
            .filter(|(_, floor)| !floor.is_zero())
            .map(|(_, floor)| self.median.as_secs_f64() / floor.as_secs_f64())
    }

    /// Whether the target was met; `None` when there is no target.
    fn met(&self) -> Option<bool> {
        match self.target {
            Target::None => None,
            Target::WithinFloor(limit) => self.ratio().map(|ratio| ratio <= limit),
            Target::RateAtLeast(limit) => self.ratio().map(|ratio| 1.0 / ratio >= limit),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::None => "-".to_owned(),
            Target::WithinFloor(limit) => format!("<= {limit}x floor"),
            Target::RateAtLeast(limit) => format!(">= {limit}x floor's rate"),
        }
    }
}

/// Formats a duration with three significant figures in a fitting unit.
pub(crate) fn human(d: Duration) -> String {
    let ns = d.as_secs_f64() * 1e9;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.3} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.3} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

/// One stream length of the load table: the same stream loaded by full replay and through a
/// snapshot `trailing` events before its head.
#[derive(Debug, Clone)]
pub(crate) struct LoadPoint {
    pub(crate) backend: &'static str,
    pub(crate) events: u64,
    pub(crate) trailing: u64,
    pub(crate) full: (Duration, Duration),
    pub(crate) snapshot: (Duration, Duration),
    /// The backend's floor, measured in the same run.
    pub(crate) floor: Option<Duration>,
}

impl LoadPoint {
    pub(crate) fn new(
        backend: &'static str,
        events: u64,
        trailing: u64,
        full: &Samples,
        snapshot: &Samples,
    ) -> Self {
        Self {
            backend,
            events,
            trailing,
            full: (full.median(), full.p95()),
            snapshot: (snapshot.median(), snapshot.p95()),
            floor: None,
        }
    }

    /// Compares both loads with the backend's floor, when it has one.
    pub(crate) fn against(mut self, floor: Option<Duration>) -> Self {
        self.floor = floor.filter(|floor| !floor.is_zero());
        self
    }

    /// Both medians as multiples of the floor.
    fn ratios(&self) -> Option<(f64, f64)> {
        self.floor.map(|floor| {
            (
                self.full.0.as_secs_f64() / floor.as_secs_f64(),
                self.snapshot.0.as_secs_f64() / floor.as_secs_f64(),
            )
        })
    }

    /// How many times faster the snapshot load is, by medians.
    pub(crate) fn speedup(&self) -> f64 {
        self.full.0.as_secs_f64() / self.snapshot.0.as_secs_f64().max(1e-12)
    }
}

/// Operations per second of one store operation, run by `tasks` tasks at once.
#[derive(Debug, Clone)]
pub(crate) struct Rate {
    pub(crate) backend: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) tasks: usize,
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    /// The floor's rate on one connection (one over its median), measured in the same run.
    pub(crate) floor: Option<f64>,
}

impl Rate {
    pub(crate) fn per_second(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "a rate, not a count")]
        let ops = self.ops as f64;
        ops / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn ratio(&self) -> Option<f64> {
        self.floor
            .filter(|floor| *floor > 0.0)
            .map(|floor| self.per_second() / floor)
    }
}

/// Where a row of the report goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// Store operations and loads, against the floors and the targets of docs/benchmarks.md.
    Operations,
    /// The latency of saving one event, per snapshot mode.
    Saves,
}

/// Everything a run measured.
#[derive(Debug)]
pub(crate) struct Report {
    quick: bool,
    command: String,
    /// When and where the run happened, read once so the markdown and the JSON agree.
    date: String,
    machine: String,
    rows: Vec<(Section, Row)>,
    loads: Vec<LoadPoint>,
    rates: Vec<Rate>,
}

/// Formats a count with thousands separators.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Formats operations per second, rounded, with thousands separators.
fn per_second(rate: f64) -> String {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rate, rounded for people"
    )]
    let whole = rate.round().max(0.0) as u64;
    thousands(whole)
}

/// A speed-up: one decimal below 10x, whole and with separators above.
fn times(factor: f64) -> String {
    if factor < 10.0 {
        format!("{factor:.1}x")
    } else {
        format!("{}x", per_second(factor))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The machine the run measured: logical cores and, on Linux, the CPU model.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        });
    match model {
        Some(model) => format!("{cores} cores, {model}, {}", std::env::consts::OS),
        None => format!("{cores} cores, {}", std::env::consts::OS),
    }
}

/// Today's date (UTC), as `YYYY-MM-DD`.
fn today() -> String {
    let now = snap_es::time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

impl Report {
    pub(crate) fn new(quick: bool, command: String) -> Self {
        Self {
            quick,
            command,
            date: today(),
            machine: machine(),
            rows: Vec::new(),
            loads: Vec::new(),
            rates: Vec::new(),
        }
    }

    #[allow(clippy::print_stderr, reason = "progress goes to stderr")]
    pub(crate) fn add(&mut self, section: Section, row: Row) {
        eprintln!(
            "snap-bench: {:<9} {:<52} {:>12}  ({} samples)",
            row.backend,
            row.name,
            human(row.median),
            row.samples
        );
        self.rows.push((section, row));
    }

    #[allow(clippy::print_stderr, reason = "progress goes to stderr")]
    pub(crate) fn add_load(&mut self, point: LoadPoint) {
        eprintln!(
            "snap-bench: {:<9} load {:>7} events: full {:>12}, snapshot + {} {:>12} ({})",
            point.backend,
            point.events,
            human(point.full.0),
            point.trailing,
            human(point.snapshot.0),
            times(point.speedup())
        );
        self.loads.push(point);
    }

    #[allow(clippy::print_stderr, reason = "progress goes to stderr")]
    pub(crate) fn add_rate(&mut self, rate: Rate) {
        eprintln!(
            "snap-bench: {:<9} {:<36} {} task(s) {:>10} ops/s",
            rate.backend,
            rate.operation,
            rate.tasks,
            per_second(rate.per_second())
        );
        self.rates.push(rate);
    }

    #[allow(clippy::print_stderr, reason = "progress goes to stderr")]
    pub(crate) fn progress(line: &str) {
        eprintln!("snap-bench: {line}");
    }

    fn rows_table(&self, section: Section, out: &mut String) {
        out.push_str("| backend | measurement | median | p95 | floor | ratio | target | met |\n");
        out.push_str("|---|---|---:|---:|---|---:|---|:-:|\n");
        for (_, row) in self.rows.iter().filter(|(s, _)| *s == section) {
            let floor = row.floor.map_or_else(
                || "-".to_owned(),
                |(name, d)| format!("{name} {}", human(d)),
            );
            let ratio = row
                .ratio()
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
            let met = match row.met() {
                None => "",
                Some(true) => "yes",
                Some(false) => "**no**",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                row.backend,
                row.name,
                human(row.median),
                human(row.p95),
                floor,
                ratio,
                row.target_text(),
                met
            );
        }
    }

    fn markdown(&self) -> String {
        let mut out = String::from("# snap-es benchmark\n\n");
        let _ = writeln!(
            out,
            "Measured {} on {} with `{}`. Medians of many samples, p95 beside them.\n",
            self.date, self.machine, self.command
        );
        if self.quick {
            out.push_str("_Quick run: few samples and a short stream; not a measurement._\n\n");
        }
        if !self.loads.is_empty() {
            out.push_str("## Load time, without and with snapshots\n\n");
            out.push_str(
                "One aggregate of the bank-account model. Without snapshots a load replays every \
                 event; with `Threshold(100)` it reads the snapshot and replays at most 99 events \
                 (measured at the worst case, 99).\n\n",
            );
            out.push_str(
                "| backend | events | without snapshot | with snapshot (every 100) | speed-up | p95 without | p95 with | floor | without / floor | with / floor |\n",
            );
            out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for point in &self.loads {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    point.backend,
                    thousands(point.events),
                    human(point.full.0),
                    human(point.snapshot.0),
                    times(point.speedup()),
                    human(point.full.1),
                    human(point.snapshot.1),
                    point.floor.map_or_else(|| "-".to_owned(), human),
                    point
                        .ratios()
                        .map_or_else(|| "-".to_owned(), |(full, _)| times(full)),
                    point
                        .ratios()
                        .map_or_else(|| "-".to_owned(), |(_, snap)| times(snap)),
                );
            }
            out.push_str("\n![load time by stream length](report.svg)\n\n");
        }
        out.push_str("## Store operations and loads against the floors\n\n");
        out.push_str(
            "The floor is a bare prepared primary-key SELECT of the same snapshot row on a \
             dedicated connection, measured in the same run. The targets are those listed in \
             [the benchmarks guide](../benchmarks.md#targets).\n\n",
        );
        self.rows_table(Section::Operations, &mut out);
        if self.rows.iter().any(|(s, _)| *s == Section::Saves) {
            out.push_str("\n## Save latency of one event\n\n");
            out.push_str(
                "A save of one event through the repository, with no snapshots, and with a \
                 snapshot on every save (`Threshold(1)`) written in `sync` or `background` mode: \
                 the most a snapshot can add to a save.\n\n",
            );
            self.rows_table(Section::Saves, &mut out);
        }
        if !self.rates.is_empty() {
            out.push_str("\n## Store throughput\n\n");
            out.push_str(
                "Operations per second of the snapshot store, by one task and by several at \
                 once. The ratio compares with the floor's rate on one connection.\n\n",
            );
            out.push_str("| backend | operation | tasks | ops/s | floor ops/s | ratio |\n");
            out.push_str("|---|---|---:|---:|---:|---:|\n");
            for rate in &self.rates {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    rate.backend,
                    rate.operation,
                    rate.tasks,
                    per_second(rate.per_second()),
                    rate.floor.map_or_else(|| "-".to_owned(), per_second),
                    rate.ratio()
                        .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x")),
                );
            }
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|(section, row)| {
                serde_json::json!({
                    "section": match section {
                        Section::Operations => "operations",
                        Section::Saves => "saves",
                    },
                    "backend": row.backend,
                    "measurement": row.name,
                    "median_ns": nanos(row.median),
                    "p95_ns": nanos(row.p95),
                    "samples": row.samples,
                    "floor": row.floor.map(|(name, d)| serde_json::json!({
                        "name": name,
                        "median_ns": nanos(d),
                    })),
                    "ratio": row.ratio(),
                    "target": row.target_text(),
                    "met": row.met(),
                })
            })
            .collect();
        let loads: Vec<_> = self
            .loads
            .iter()
            .map(|point| {
                serde_json::json!({
                    "backend": point.backend,
                    "events": point.events,
                    "events_after_snapshot": point.trailing,
                    "full_replay": { "median_ns": nanos(point.full.0), "p95_ns": nanos(point.full.1) },
                    "snapshot": { "median_ns": nanos(point.snapshot.0), "p95_ns": nanos(point.snapshot.1) },
                    "speedup": point.speedup(),
                    "floor_ns": point.floor.map(nanos),
                    "full_replay_to_floor": point.ratios().map(|(full, _)| full),
                    "snapshot_to_floor": point.ratios().map(|(_, snapshot)| snapshot),
                })
            })
            .collect();
        let rates: Vec<_> = self
            .rates
            .iter()
            .map(|rate| {
                serde_json::json!({
                    "backend": rate.backend,
                    "operation": rate.operation,
                    "tasks": rate.tasks,
                    "ops": rate.ops,
                    "elapsed_ns": nanos(rate.elapsed),
                    "ops_per_second": rate.per_second(),
                    "floor_ops_per_second": rate.floor,
                    "ratio": rate.ratio(),
                })
            })
            .collect();
        serde_json::json!({
            "date": self.date,
            "machine": self.machine,
            "command": self.command,
            "quick": self.quick,
            "loads": loads,
            "rows": rows,
            "throughput": rates,
        })
    }

    /// Prints the markdown and writes `report.md`, `report.json` and `report.svg` under `dir`.
    #[allow(clippy::print_stdout, reason = "the table is the benchmark's output")]
    pub(crate) fn write(&self, dir: &Path) -> std::io::Result<()> {
        let markdown = self.markdown();
        println!("{markdown}");
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), &markdown)?;
        let json = serde_json::to_string_pretty(&self.json()).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json + "\n")?;
        if !self.loads.is_empty() {
            crate::chart::draw(&self.loads, &dir.join("report.svg"))?;
        }
        Self::progress(&format!(
            "wrote report.md, report.json and report.svg to {}",
            dir.display()
        ));
        Ok(())
    }
}
