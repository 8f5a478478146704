//! The report: a markdown table on stdout and in `DIR/results.md`, the same rows as JSON in
//! `DIR/results.json`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::measure::Samples;

/// What a measurement should reach, judged in the same run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// Reported for scale only.
    None,
    /// A median under this time.
    Under(Duration),
    /// A median within this multiple of the row's floor.
    WithinFloor(f64),
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
            Target::Under(limit) => Some(self.median < limit),
            Target::WithinFloor(limit) => self.ratio().map(|ratio| ratio <= limit),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::None => "-".to_owned(),
            Target::Under(limit) => format!("< {}", human(limit)),
            Target::WithinFloor(limit) => format!("<= {limit}x floor"),
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

/// All rows of a run.
#[derive(Debug)]
pub(crate) struct Report {
    quick: bool,
    rows: Vec<Row>,
}

impl Report {
    pub(crate) fn new(quick: bool) -> Self {
        Self {
            quick,
            rows: Vec::new(),
        }
    }

    #[allow(clippy::print_stderr, reason = "progress goes to stderr")]
    pub(crate) fn add(&mut self, row: Row) {
        eprintln!(
            "snap-bench: {:<9} {:<52} {:>12}  ({} samples)",
            row.backend,
            row.name,
            human(row.median),
            row.samples
        );
        self.rows.push(row);
    }

    #[allow(clippy::print_stderr, reason = "progress goes to stderr")]
    pub(crate) fn progress(line: &str) {
        eprintln!("snap-bench: {line}");
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        if self.quick {
            out.push_str("_Quick run: few samples and a short stream; not a measurement._\n\n");
        }
        out.push_str("| backend | measurement | median | p95 | floor | ratio | target | met |\n");
        out.push_str("|---|---|---:|---:|---|---:|---|:-:|\n");
        for row in &self.rows {
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
        out
    }

    fn json(&self) -> serde_json::Value {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|row| {
                serde_json::json!({
                    "backend": row.backend,
                    "measurement": row.name,
                    "median_ns": u64::try_from(row.median.as_nanos()).unwrap_or(u64::MAX),
                    "p95_ns": u64::try_from(row.p95.as_nanos()).unwrap_or(u64::MAX),
                    "samples": row.samples,
                    "floor": row.floor.map(|(name, d)| serde_json::json!({
                        "name": name,
                        "median_ns": u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
                    })),
                    "ratio": row.ratio(),
                    "target": row.target_text(),
                    "met": row.met(),
                })
            })
            .collect();
        serde_json::json!({ "quick": self.quick, "rows": rows })
    }

    /// Prints the table and writes `results.md` and `results.json` under `dir`.
    #[allow(clippy::print_stdout, reason = "the table is the benchmark's output")]
    pub(crate) fn write(&self, dir: &Path) -> std::io::Result<()> {
        let markdown = self.markdown();
        println!("{markdown}");
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("results.md"), &markdown)?;
        let json = serde_json::to_string_pretty(&self.json()).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("results.json"), json + "\n")?;
        Self::progress(&format!("wrote {}", dir.join("results.md").display()));
        Ok(())
    }
}
