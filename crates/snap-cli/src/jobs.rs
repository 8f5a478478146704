//! Long jobs over the aggregates of a type (`rebuild`, `verify`): ids in the order of their
//! text, a bounded number at once, an optional rate limit, a cursor that makes an interrupted
//! run resumable, and a clean stop on Ctrl-C.
//!
//! On Ctrl-C (or the first error) no further aggregate is started and the ones under way are
//! finished, so what is done is always every id up to one: the position the cursor keeps.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use snap_core::{AggregateId, DynEventStore};
use snap_repo::{Rebuilt, SnapshotCheck};
use tokio::task::JoinSet;
use tokio::time::{Interval, MissedTickBehavior};

use crate::open::{Failure, fail};
use crate::progress::Progress;
use crate::registry::Checks;

/// Ids listed per request.
const PAGE: usize = 1_000;

/// How often the cursor file is brought up to date while a job runs.
const CURSOR_EVERY: Duration = Duration::from_millis(200);

/// What a job does to one aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    Rebuild,
    Verify,
}

/// What it found.
#[derive(Debug)]
pub(crate) enum Done {
    Rebuilt(Rebuilt),
    Checked(SnapshotCheck),
}

/// The position file of `--cursor`.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    path: PathBuf,
    aggregate_type: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CursorFile {
    aggregate_type: String,
    after: AggregateId,
}

impl Cursor {
    pub(crate) fn new(path: &Path, aggregate_type: &str) -> Self {
        Self {
            path: path.to_owned(),
            aggregate_type: aggregate_type.to_owned(),
        }
    }

    /// The id a previous run stopped after, if the file exists.
    pub(crate) fn read(&self) -> Result<Option<AggregateId>, Failure> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(fail(format!(
                    "cannot read the cursor {}: {e}",
                    self.path.display()
                )));
            }
        };
        let file: CursorFile = serde_json::from_str(&text).map_err(|e| {
            fail(format!(
                "the cursor {} is not a snap-es cursor: {e}",
                self.path.display()
            ))
        })?;
        if file.aggregate_type != self.aggregate_type {
            return Err(fail(format!(
                "the cursor {} is for type {:?}, not {:?}",
                self.path.display(),
                file.aggregate_type,
                self.aggregate_type
            )));
        }
        Ok(Some(file.after))
    }

    /// Records that every id up to `after` is done (written whole, then renamed over).
    pub(crate) fn write(&self, after: &AggregateId) -> Result<(), Failure> {
        let file = CursorFile {
            aggregate_type: self.aggregate_type.clone(),
            after: after.clone(),
        };
        let text = serde_json::to_string(&file)?;
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|e| {
                fail(format!(
                    "cannot write the cursor {}: {e}",
                    self.path.display()
                ))
            })
    }

    /// The job ended: nothing to resume.
    pub(crate) fn remove(&self) -> Result<(), Failure> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(format!(
                "cannot remove the cursor {}: {e}",
                self.path.display()
            ))),
            _ => Ok(()),
        }
    }
}

/// Every aggregate id of `aggregate_type` after `after`, in order.
pub(crate) async fn list_ids(
    events: &DynEventStore,
    aggregate_type: &str,
    mut after: Option<AggregateId>,
) -> Result<Vec<AggregateId>, Failure> {
    let mut ids = Vec::new();
    loop {
        let page = events
            .list_aggregate_ids(aggregate_type, after.as_ref(), PAGE)
            .await?;
        let full = page.len() == PAGE;
        after = page.last().cloned();
        ids.extend(page);
        if !full {
            return Ok(ids);
        }
    }
}

/// How a job runs.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) concurrency: usize,
    pub(crate) max_rate: Option<u32>,
    pub(crate) cursor: Option<Cursor>,
}

/// How a job ended.
#[derive(Debug)]
pub(crate) struct Ended {
    /// Aggregates done.
    pub(crate) done: u64,
    /// Aggregates the job had to do.
    pub(crate) total: u64,
    /// Stopped by Ctrl-C.
    pub(crate) interrupted: bool,
    /// The first failure: the aggregate (unless the task itself failed) and the error.
    pub(crate) error: Option<(Option<AggregateId>, String)>,
    /// Every id up to this one is done; `None` when none is.
    pub(crate) done_through: Option<AggregateId>,
    pub(crate) elapsed: Duration,
}

impl Ended {
    /// Every aggregate was done.
    pub(crate) fn complete(&self) -> bool {
        self.done == self.total && self.error.is_none()
    }
}

async fn tick(ticker: &mut Option<Interval>) {
    if let Some(ticker) = ticker {
        ticker.tick().await;
    }
}

/// Runs `task` on every one of `ids` and hands each result to `on_done`.
pub(crate) async fn run(
    checks: Arc<dyn Checks>,
    task: Task,
    ids: Vec<AggregateId>,
    settings: &Settings,
    progress: &mut Progress,
    mut on_done: impl FnMut(&AggregateId, Done),
) -> Result<Ended, Failure> {
    let started = Instant::now();
    let total = ids.len();
    let mut finished = vec![false; total];
    // ids[..frontier] are all done.
    let mut frontier = 0;
    let mut next = 0;
    let mut done = 0u64;
    let mut error = None;
    let mut interrupted = false;
    let mut cursor_written = Instant::now();
    let mut ticker = settings.max_rate.map(|rate| {
        let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    });
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut running = JoinSet::new();
    loop {
        let stopping = interrupted || error.is_some();
        let can_start = !stopping && next < total && running.len() < settings.concurrency;
        if !can_start && running.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            _ = &mut ctrl_c, if !interrupted => interrupted = true,
            Some(joined) = running.join_next(), if !running.is_empty() => {
                let (index, outcome): (usize, Result<Done, String>) = match joined {
                    Ok(result) => result,
                    Err(e) => {
                        error.get_or_insert((None, format!("a task failed: {e}")));
                        continue;
                    }
                };
                match outcome {
                    Ok(result) => {
                        on_done(&ids[index], result);
                        finished[index] = true;
                        done += 1;
                        while frontier < total && finished[frontier] {
                            frontier += 1;
                        }
                        progress.set(done);
                        if let Some(cursor) = &settings.cursor
                            && frontier > 0
                            && cursor_written.elapsed() >= CURSOR_EVERY
                        {
                            cursor.write(&ids[frontier - 1])?;
                            cursor_written = Instant::now();
                        }
                    }
                    Err(message) => {
                        error.get_or_insert((Some(ids[index].clone()), message));
                    }
                }
            }
            () = tick(&mut ticker), if can_start => {
                let checks = Arc::clone(&checks);
                let id = ids[next].clone();
                let index = next;
                running.spawn(async move {
                    let outcome = match task {
                        Task::Rebuild => checks.rebuild(id).await.map(Done::Rebuilt),
                        Task::Verify => checks.verify(id).await.map(Done::Checked),
                    };
                    (index, outcome.map_err(|e| Failure::from(e).0))
                });
                next += 1;
            }
        }
    }
    progress.finish(done);
    let done_through = frontier.checked_sub(1).map(|last| ids[last].clone());
    let ended = Ended {
        done,
        total: total as u64,
        interrupted,
        error,
        done_through,
        elapsed: started.elapsed(),
    };
    if let Some(cursor) = &settings.cursor {
        if ended.complete() {
            cursor.remove()?;
        } else if let Some(after) = &ended.done_through {
            cursor.write(after)?;
        }
    }
    Ok(ended)
}
