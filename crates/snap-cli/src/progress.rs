//! Progress of a long job: a bar on a terminal, a plain line every few seconds elsewhere (a
//! log file, a CI job), nothing under `--json`. Always on standard error, so standard output
//! holds only the result.

#![allow(
    clippy::print_stderr,
    reason = "progress goes to the terminal's error stream"
)]

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// How often a plain progress line is printed.
const EVERY: Duration = Duration::from_secs(2);

/// Where progress goes.
#[derive(Debug)]
pub(crate) enum Progress {
    /// An indicatif bar (standard error is a terminal).
    Bar(ProgressBar),
    /// A line now and then.
    Lines {
        label: String,
        total: u64,
        started: Instant,
        shown: Instant,
    },
    /// Nothing (`--json`).
    Silent,
}

impl Progress {
    /// Progress of `total` steps of the job `label`.
    pub(crate) fn new(label: String, total: u64, json: bool) -> Self {
        if json {
            return Self::Silent;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            let style =
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({rate}, {eta} left)")
                    .map(|style| {
                        style.progress_chars("=> ").with_key(
                            "rate",
                            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                                let _ = write!(out, "{:.0}/s", state.per_sec());
                            },
                        )
                    });
            if let Ok(style) = style {
                bar.set_style(style);
            }
            bar.set_message(label);
            bar.enable_steady_tick(Duration::from_millis(200));
            return Self::Bar(bar);
        }
        let now = Instant::now();
        Self::Lines {
            label,
            total,
            started: now,
            shown: now,
        }
    }

    /// `done` steps are done.
    pub(crate) fn set(&mut self, done: u64) {
        match self {
            Self::Bar(bar) => bar.set_position(done),
            Self::Lines { shown, .. } if shown.elapsed() >= EVERY => {
                *shown = Instant::now();
                self.line(done);
            }
            Self::Lines { .. } | Self::Silent => {}
        }
    }

    /// The job ended with `done` steps done.
    pub(crate) fn finish(&mut self, done: u64) {
        match self {
            Self::Bar(bar) => {
                bar.set_position(done);
                bar.abandon();
            }
            Self::Lines { .. } => self.line(done),
            Self::Silent => {}
        }
    }

    fn line(&self, done: u64) {
        if let Self::Lines {
            label,
            total,
            started,
            ..
        } = self
        {
            eprintln!("{}", line(label, done, *total, started.elapsed()));
        }
    }
}

/// `rebuild BankAccount: 2000/10000 (20%), 1520/s, 5 s left`.
pub(crate) fn line(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let seconds = elapsed.as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "a rate to show")]
    let rate = if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    };
    let left = if rate > 0.0 && done < total {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "an estimate to show"
        )]
        let left = ((total - done) as f64 / rate).ceil() as u64;
        format!(", {left} s left")
    } else {
        String::new()
    };
    format!("{label}: {done}/{total} ({percent}%), {rate:.0}/s{left}")
}

#[cfg(test)]
mod tests {
    use super::line;
    use std::time::Duration;

    #[test]
    fn a_line_shows_the_count_the_rate_and_what_is_left() {
        assert_eq!(
            line("rebuild T", 2_000, 10_000, Duration::from_secs(2)),
            "rebuild T: 2000/10000 (20%), 1000/s, 8 s left"
        );
        assert_eq!(
            line("verify T", 0, 0, Duration::ZERO),
            "verify T: 0/0 (100%), 0/s"
        );
    }
}
