//! The background snapshot writer: a bounded queue that coalesces requests per aggregate and
//! writes them with bounded concurrency, off the path of `save`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use snap_core::{AggregateId, DynSnapshotStore, Snapshot};
use tokio::sync::Notify;

/// Limits of a [`BackgroundSnapshotter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackgroundConfig {
    /// Most aggregates with a queued (not yet started) write; a request beyond it is dropped,
    /// logged and counted. Default 1,024.
    pub queue_capacity: usize,
    /// Most writes running at once. Default 4.
    pub max_concurrency: usize,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1_024,
            max_concurrency: 4,
        }
    }
}

impl BackgroundConfig {
    /// Sets the queue capacity (at least 1).
    #[must_use]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Sets the number of concurrent writes (at least 1).
    #[must_use]
    pub fn max_concurrency(mut self, writers: usize) -> Self {
        self.max_concurrency = writers.max(1);
        self
    }
}

/// What became of a request given to [`BackgroundSnapshotter::schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// Queued for writing.
    Queued,
    /// Merged with a queued request for the same aggregate; the higher version is written.
    Coalesced,
    /// Not queued: the queue is full, the snapshotter was shut down, or there is no tokio
    /// runtime to write on. Logged and counted.
    Dropped,
}

/// Counters of a [`BackgroundSnapshotter`] since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackgroundStats {
    /// Requests queued as a new write.
    pub queued: u64,
    /// Requests merged into a queued write (or older than a running one).
    pub coalesced: u64,
    /// Requests dropped.
    pub dropped: u64,
    /// Writes that succeeded.
    pub written: u64,
    /// Writes that failed (store error or panic).
    pub failed: u64,
}

type Key = (String, AggregateId);

struct Job {
    snapshot: Snapshot,
    ticket: u64,
}

#[derive(Default)]
struct Queue {
    /// Requests not started yet, one per aggregate.
    pending: HashMap<Key, Job>,
    /// Pending aggregates, oldest first.
    order: VecDeque<Key>,
    /// Aggregates being written, with the version being written.
    running: HashMap<Key, u64>,
    /// Tickets of the writes pending or running.
    outstanding: BTreeSet<u64>,
    next_ticket: u64,
    workers: usize,
    closed: bool,
    /// Aggregates whose latest write failed, with its version, until a later write succeeds
    /// (at most `FAILURES_REMEMBERED`).
    failed: HashMap<Key, u64>,
}

/// How many failed aggregates the snapshotter remembers; beyond that, failures are only
/// counted and logged.
const FAILURES_REMEMBERED: usize = 4_096;

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    coalesced: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
}

struct Shared {
    store: Arc<DynSnapshotStore>,
    config: BackgroundConfig,
    queue: Mutex<Queue>,
    /// Woken whenever a write finishes.
    finished: Notify,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent after every critical section, so a poisoned lock is usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes the queue when the last [`BackgroundSnapshotter`] handle is dropped. The workers
/// still drain what was queued, then stop.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.lock().closed = true;
    }
}

/// Writes snapshots in the background.
///
/// - A request for an aggregate that already has a queued write replaces it if it is newer:
///   at most one write per aggregate runs at a time, and bursts of saves cost few writes.
/// - At most [`BackgroundConfig::max_concurrency`] writes run at once, on tokio tasks started
///   on demand; no task lingers when the queue is empty.
/// - Failures are logged with `tracing` and counted; they never reach the caller.
/// - [`await_pending`](Self::await_pending) waits for the writes queued before it;
///   [`shutdown`](Self::shutdown) refuses new requests and waits for all. When the last handle
///   is dropped, queued writes still complete on the runtime; if the runtime stops first they
///   are cancelled, which a store's atomic `save_snapshot` leaves without a partial row, and
///   counted as dropped with a warning that says how many.
///
/// Clones share the queue.
#[derive(Clone)]
pub struct BackgroundSnapshotter {
    shared: Arc<Shared>,
    _close: Arc<CloseOnDrop>,
}

impl fmt::Debug for BackgroundSnapshotter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundSnapshotter")
            .field("store", &self.shared.store)
            .field("config", &self.shared.config)
            .field("pending", &self.pending_count())
            .finish_non_exhaustive()
    }
}

impl BackgroundSnapshotter {
    /// A snapshotter writing to `store`. A capacity or concurrency of 0 counts as 1.
    pub fn new(store: Arc<DynSnapshotStore>, config: BackgroundConfig) -> Self {
        let config = config
            .queue_capacity(config.queue_capacity)
            .max_concurrency(config.max_concurrency);
        let shared = Arc::new(Shared {
            store,
            config,
            queue: Mutex::new(Queue::default()),
            finished: Notify::new(),
            counters: Counters::default(),
        });
        Self {
            _close: Arc::new(CloseOnDrop(Arc::clone(&shared))),
            shared,
        }
    }

    /// Queues a snapshot for writing and returns at once.
    pub fn schedule(&self, snapshot: Snapshot) -> Scheduled {
        let counters = &self.shared.counters;
        let key = (
            snapshot.aggregate_type.clone(),
            snapshot.aggregate_id.clone(),
        );
        let mut queue = self.shared.lock();
        if queue.closed {
            drop(queue);
            return self.dropped(&snapshot, "the snapshotter is shut down");
        }
        if let Some(job) = queue.pending.get_mut(&key) {
            if snapshot.version >= job.snapshot.version {
                job.snapshot = snapshot;
            }
            counters.coalesced.fetch_add(1, Ordering::Relaxed);
            drop(queue);
            outcome(&key.0, "coalesced");
            return Scheduled::Coalesced;
        }
        if queue
            .running
            .get(&key)
            .is_some_and(|&v| v >= snapshot.version)
        {
            counters.coalesced.fetch_add(1, Ordering::Relaxed);
            drop(queue);
            outcome(&key.0, "coalesced");
            return Scheduled::Coalesced;
        }
        if queue.pending.len() >= self.shared.config.queue_capacity {
            drop(queue);
            return self.dropped(&snapshot, "the queue is full");
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            drop(queue);
            return self.dropped(&snapshot, "there is no tokio runtime to write on");
        };
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.outstanding.insert(ticket);
        queue.order.push_back(key.clone());
        queue.pending.insert(key, Job { snapshot, ticket });
        counters.queued.fetch_add(1, Ordering::Relaxed);
        if queue.workers < self.shared.config.max_concurrency {
            queue.workers += 1;
            runtime.spawn(work(Arc::clone(&self.shared)));
        }
        Scheduled::Queued
    }

    fn dropped(&self, snapshot: &Snapshot, why: &str) -> Scheduled {
        self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
        outcome(&snapshot.aggregate_type, "dropped");
        tracing::warn!(
            aggregate_id = %snapshot.aggregate_id,
            aggregate_type = %snapshot.aggregate_type,
            version = snapshot.version,
            "background snapshot dropped: {why}"
        );
        Scheduled::Dropped
    }

    /// Writes queued or running: at most one per aggregate queued plus one running.
    pub fn pending_count(&self) -> usize {
        let queue = self.shared.lock();
        queue.pending.len() + queue.running.len()
    }

    /// Waits for every write queued or running when it was called (whether it succeeds or
    /// fails) and returns how many that was. Writes queued meanwhile are not waited for.
    pub async fn await_pending(&self) -> usize {
        let (count, before) = {
            let queue = self.shared.lock();
            (queue.outstanding.len(), queue.next_ticket)
        };
        loop {
            let finished = self.shared.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if self
                .shared
                .lock()
                .outstanding
                .range(..before)
                .next()
                .is_none()
            {
                return count;
            }
            finished.await;
        }
    }

    /// Refuses new requests, waits for the queued and running writes, and returns how many
    /// that was. Other handles see the snapshotter as shut down.
    pub async fn shutdown(&self) -> usize {
        self.shared.lock().closed = true;
        self.await_pending().await
    }

    /// The version of the latest write of this aggregate that failed, if no later write of it
    /// succeeded since: the snapshot a caller noted when it scheduled that write does not
    /// exist. `None` when the last write succeeded, none was made, or too many aggregates
    /// failed to remember them all.
    pub fn failed_write(&self, aggregate_type: &str, aggregate_id: &AggregateId) -> Option<u64> {
        self.shared
            .lock()
            .failed
            .get(&(aggregate_type.to_owned(), aggregate_id.clone()))
            .copied()
    }

    /// The counters so far.
    pub fn stats(&self) -> BackgroundStats {
        let c = &self.shared.counters;
        BackgroundStats {
            queued: c.queued.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}

/// Counts a background request's outcome in the same metric as the repository's own writes:
/// `snap_repo_snapshot_writes_total{aggregate_type, mode="background", outcome}`, where the
/// outcome is `ok`, `error`, `coalesced` or `dropped`.
fn outcome(aggregate_type: &str, outcome: &'static str) {
    metrics::counter!(
        "snap_repo_snapshot_writes_total",
        "aggregate_type" => aggregate_type.to_owned(),
        "mode" => "background",
        "outcome" => outcome
    )
    .increment(1);
}

/// Counts and logs the writes still queued or running when a worker is dropped before it
/// finished: the runtime stopped under it. The first worker to notice takes them all.
struct LostOnDrop {
    shared: Arc<Shared>,
    armed: bool,
}

impl Drop for LostOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let lost = {
            let mut queue = self.shared.lock();
            queue.closed = true;
            let lost = queue.pending.len() + queue.running.len();
            queue.pending.clear();
            queue.order.clear();
            queue.running.clear();
            queue.outstanding.clear();
            lost
        };
        if lost > 0 {
            self.shared
                .counters
                .dropped
                .fetch_add(lost as u64, Ordering::Relaxed);
            tracing::warn!(
                lost,
                "the runtime stopped before {lost} background snapshot writes were done; they \
                 are lost (the events are not: loads replay a little more)"
            );
        }
        self.shared.finished.notify_waiters();
    }
}

/// A worker: takes the oldest queued write whose aggregate has none running, writes it, and
/// repeats until nothing is left it may start. The guard that counts lost writes is made
/// before the worker's future, so a worker that the runtime drops without ever polling it
/// counts them too.
fn work(shared: Arc<Shared>) -> impl Future<Output = ()> + Send + 'static {
    let guard = LostOnDrop {
        shared: Arc::clone(&shared),
        armed: true,
    };
    async move {
        // The whole guard moves into the future (a field assignment alone would capture only
        // the field, and drop the guard here, under the caller's lock).
        let mut guard = guard;
        drain(&shared).await;
        guard.armed = false;
    }
}

async fn drain(shared: &Arc<Shared>) {
    loop {
        let job = {
            let mut queue = shared.lock();
            let next = {
                let q = &*queue;
                q.order.iter().position(|key| !q.running.contains_key(key))
            };
            let Some(position) = next else {
                queue.workers -= 1;
                return;
            };
            let Some(key) = queue.order.remove(position) else {
                queue.workers -= 1;
                return;
            };
            let Some(job) = queue.pending.remove(&key) else {
                continue;
            };
            queue.running.insert(key.clone(), job.snapshot.version);
            (key, job)
        };
        let (key, Job { snapshot, ticket }) = job;
        // The write runs as its own task so that a panicking store is a failed write, not a
        // lost worker.
        let store = Arc::clone(&shared.store);
        let write = tokio::spawn(async move {
            let result = store.save_snapshot(&snapshot).await;
            (snapshot, result)
        })
        .await;
        let failed = !matches!(write, Ok((_, Ok(()))));
        match write {
            Ok((_, Ok(()))) => {
                shared.counters.written.fetch_add(1, Ordering::Relaxed);
                outcome(&key.0, "ok");
            }
            Ok((snapshot, Err(error))) => {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                outcome(&key.0, "error");
                tracing::warn!(
                    aggregate_id = %snapshot.aggregate_id,
                    aggregate_type = %snapshot.aggregate_type,
                    version = snapshot.version,
                    error = &error as &dyn std::error::Error,
                    "background snapshot write failed"
                );
            }
            Err(join_error) => {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                outcome(&key.0, "error");
                tracing::warn!(
                    aggregate_id = %key.1,
                    aggregate_type = %key.0,
                    error = %join_error,
                    "background snapshot write panicked or was cancelled"
                );
            }
        }
        {
            let mut queue = shared.lock();
            if let Some(version) = queue.running.remove(&key) {
                if failed {
                    if queue.failed.len() < FAILURES_REMEMBERED || queue.failed.contains_key(&key) {
                        let known = queue.failed.entry(key).or_insert(version);
                        *known = (*known).max(version);
                    }
                } else if queue.failed.get(&key).is_some_and(|&v| v <= version) {
                    queue.failed.remove(&key);
                }
            }
            queue.outstanding.remove(&ticket);
        }
        shared.finished.notify_waiters();
    }
}
