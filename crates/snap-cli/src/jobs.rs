//! Long jobs over the aggregates of a type (`rebuild`, `verify`): ids in the order of their
//! text, a bounded number at once, an optional rate limit, a cursor that makes an interrupted
//! run resumable, and a clean stop on Ctrl-C.
//!
//! On Ctrl-C no further aggregate is started and the ones under way are finished, so what is
//! done is every id up to one and none after it: the position the cursor keeps. A second
//! Ctrl-C stops at once. On an error the job stops the same way; the ones under way after the
//! failed id may be done too, and are done again by a resumed run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use snap_core::{AggregateId, DynEventStore};
use snap_repo::{Rebuilt, SnapshotCheck};
use tokio::sync::watch;
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

impl Task {
    /// The command that runs it.
    pub(crate) fn command(self) -> &'static str {
        match self {
            Self::Rebuild => "rebuild",
            Self::Verify => "verify",
        }
    }
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
    /// Aggregates under way when a second Ctrl-C stopped the job at once: their snapshots may
    /// or may not be written (a resumed run writes them again).
    pub(crate) abandoned: usize,
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

/// The Ctrl-Cs counted from now on, as long as this lives: the first stops a job cleanly,
/// the second at once.
#[derive(Debug)]
pub(crate) struct Interrupts {
    pub(crate) count: watch::Receiver<u32>,
    listener: tokio::task::JoinHandle<()>,
}

impl Interrupts {
    pub(crate) fn listen() -> Self {
        let (count, counted) = watch::channel(0);
        let listener = tokio::spawn(async move {
            let mut seen = 0;
            while tokio::signal::ctrl_c().await.is_ok() {
                seen += 1;
                if count.send(seen).is_err() {
                    break;
                }
            }
        });
        Self {
            count: counted,
            listener,
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Starts `task` on the aggregate `id`, the `index`th of the job.
fn start(
    running: &mut JoinSet<(usize, Result<Done, String>)>,
    checks: &Arc<dyn Checks>,
    task: Task,
    id: AggregateId,
    index: usize,
) {
    let checks = Arc::clone(checks);
    running.spawn(async move {
        let outcome = match task {
            Task::Rebuild => checks.rebuild(id).await.map(Done::Rebuilt),
            Task::Verify => checks.verify(id).await.map(Done::Checked),
        };
        (index, outcome.map_err(|e| Failure::from(e).0))
    });
}

async fn tick(ticker: &mut Option<Interval>) {
    if let Some(ticker) = ticker {
        ticker.tick().await;
    }
}

/// Runs `task` on every one of `ids` and hands each result to `on_done`; `interrupts` counts
/// the Ctrl-Cs (see [`Interrupts`]).
pub(crate) async fn run(
    checks: Arc<dyn Checks>,
    task: Task,
    ids: Vec<AggregateId>,
    settings: &Settings,
    progress: &mut Progress,
    mut interrupts: watch::Receiver<u32>,
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
        let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    });
    let mut abandoned = 0;
    let mut running = JoinSet::new();
    loop {
        let stopping = interrupted || error.is_some();
        let can_start = !stopping && next < total && running.len() < settings.concurrency;
        if !can_start && running.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Ok(()) = interrupts.changed() => {
                if interrupted {
                    // A second Ctrl-C: stop now, leaving what is under way.
                    abandoned = running.len();
                    running.abort_all();
                    break;
                }
                interrupted = true;
            }
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
                            if let Err(Failure(message)) = cursor.write(&ids[frontier - 1]) {
                                error.get_or_insert((None, message));
                            }
                            cursor_written = Instant::now();
                        }
                    }
                    Err(message) => {
                        error.get_or_insert((Some(ids[index].clone()), message));
                    }
                }
            }
            () = tick(&mut ticker), if can_start => {
                start(&mut running, &checks, task, ids[next].clone(), next);
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
        abandoned,
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use snap_core::AggregateId;
    use snap_repo::{Rebuilt, RepositoryError, SnapshotCheck};
    use tokio::sync::watch;

    use super::{Cursor, Done, Ended, Settings, Task, run};
    use crate::progress::Progress;
    use crate::registry::Checks;

    /// Rebuilds that take the time given per id (10 ms otherwise), or fail.
    #[derive(Default)]
    struct Fake {
        slow: HashMap<String, Duration>,
        failing: Option<String>,
        started: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Checks for Fake {
        async fn rebuild(&self, id: AggregateId) -> Result<Rebuilt, RepositoryError> {
            let name = id.to_string();
            self.started.lock().expect("a lock").push(name.clone());
            let wait = self
                .slow
                .get(&name)
                .copied()
                .unwrap_or(Duration::from_millis(10));
            tokio::time::sleep(wait).await;
            if self.failing.as_deref() == Some(name.as_str()) {
                return Err(RepositoryError::NoSnapshotStore);
            }
            Ok(Rebuilt::Written { version: 1 })
        }

        async fn verify(&self, _: AggregateId) -> Result<SnapshotCheck, RepositoryError> {
            Ok(SnapshotCheck::NoSnapshot)
        }
    }

    fn ids(n: usize) -> Vec<AggregateId> {
        (0..n)
            .map(|i| AggregateId::parse(&format!("a{i:03}")).expect("an id"))
            .collect()
    }

    /// Runs a rebuild of `n` ids at `concurrency`, with Ctrl-Cs sent after the delays given.
    async fn job(
        fake: Arc<Fake>,
        n: usize,
        concurrency: usize,
        cursor: Option<Cursor>,
        ctrl_c_after: &[u64],
    ) -> (Ended, Vec<String>) {
        let (count, counted) = watch::channel(0);
        let delays = ctrl_c_after.to_vec();
        tokio::spawn(async move {
            for (sent, after) in (1..).zip(delays) {
                tokio::time::sleep(Duration::from_millis(after)).await;
                let _ = count.send(sent);
            }
            // Kept until the job is over.
            count.closed().await;
        });
        let settings = Settings {
            concurrency,
            max_rate: None,
            cursor,
        };
        let mut progress = Progress::Silent;
        let mut done = Vec::new();
        let ended = tokio::time::timeout(
            Duration::from_secs(20),
            run(
                fake,
                Task::Rebuild,
                ids(n),
                &settings,
                &mut progress,
                counted,
                |id, _: Done| done.push(id.to_string()),
            ),
        )
        .await
        .expect("the job ends")
        .expect("no failure of the runner");
        (ended, done)
    }

    #[tokio::test]
    async fn a_clean_stop_leaves_exactly_a_prefix_done() {
        // The first id is slow: the others finish before it, out of order.
        let fake = Arc::new(Fake {
            slow: HashMap::from([("a000".to_owned(), Duration::from_millis(300))]),
            ..Fake::default()
        });
        let dir = std::env::temp_dir().join(format!("snap-jobs-{}", uuid_like()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let path = dir.join("cursor");
        let cursor = Cursor::new(&path, "T");
        let (ended, mut done) = job(fake, 60, 4, Some(cursor.clone()), &[50]).await;
        assert!(ended.interrupted && !ended.complete(), "{ended:?}");
        assert!(ended.done > 1 && ended.done < 60, "{ended:?}");
        done.sort();
        let expected: Vec<String> = ids(60)
            .iter()
            .take(done.len())
            .map(ToString::to_string)
            .collect();
        assert_eq!(done, expected, "every id up to one, none after");
        assert_eq!(
            ended.done_through.as_ref().map(ToString::to_string),
            done.last().cloned()
        );
        assert_eq!(cursor.read().expect("a cursor"), ended.done_through);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_second_ctrl_c_stops_at_once() {
        let fake = Arc::new(Fake {
            slow: HashMap::from([("a001".to_owned(), Duration::from_hours(1))]),
            ..Fake::default()
        });
        let (ended, done) = job(fake, 10, 2, None, &[50, 50]).await;
        assert!(ended.interrupted, "{ended:?}");
        assert_eq!(ended.abandoned, 1, "the hour-long one: {ended:?}");
        assert_eq!(
            ended.done_through.as_ref().map(ToString::to_string),
            Some("a000".into())
        );
        assert!(!done.contains(&"a001".to_owned()));
    }

    #[tokio::test]
    async fn the_first_error_stops_the_job_after_what_is_under_way() {
        let fake = Arc::new(Fake {
            failing: Some("a003".to_owned()),
            ..Fake::default()
        });
        let (ended, done) = job(Arc::clone(&fake), 20, 1, None, &[]).await;
        let (id, message) = ended.error.clone().expect("the failure");
        assert_eq!(id.map(|id| id.to_string()), Some("a003".into()));
        assert!(message.contains("no snapshot store"), "{message}");
        assert_eq!(done, ["a000", "a001", "a002"]);
        assert_eq!(
            ended.done_through.map(|id| id.to_string()),
            Some("a002".into())
        );
        assert_eq!(
            fake.started.lock().expect("a lock").len(),
            4,
            "none started after it"
        );
    }

    #[tokio::test]
    async fn an_empty_job_is_complete_and_removes_its_cursor() {
        let dir = std::env::temp_dir().join(format!("snap-jobs-{}", uuid_like()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let path = dir.join("cursor");
        let cursor = Cursor::new(&path, "T");
        cursor.write(&ids(1)[0]).expect("write");
        let (ended, done) = job(Arc::new(Fake::default()), 0, 4, Some(cursor), &[]).await;
        assert!(ended.complete() && done.is_empty(), "{ended:?}");
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cursor_of_another_type_is_refused() {
        let dir = std::env::temp_dir().join(format!("snap-jobs-{}", uuid_like()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let path = dir.join("cursor");
        Cursor::new(&path, "A").write(&ids(1)[0]).expect("write");
        let refused = Cursor::new(&path, "B").read().expect_err("another type");
        assert!(
            refused.0.contains("is for type \"A\", not \"B\""),
            "{}",
            refused.0
        );
        std::fs::write(&path, "not json").expect("write");
        assert!(Cursor::new(&path, "A").read().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn uuid_like() -> String {
        format!(
            "{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        )
    }
}
