//! Store wrappers that fail, corrupt, stall or record on demand, for the repository cases.
//! Wrap any backend's store; share the wrapper through an `Arc` to steer it from the test.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use snap_core::{
    AggregateId, EventStore, EventStoreError, NewEvent, RecordedEvent, Snapshot, SnapshotError,
    SnapshotStore, async_trait,
};
use tokio::sync::{Barrier, watch};

/// A snapshot store that fails, corrupts or stalls on demand, and records what it wrote.
#[derive(Debug)]
pub struct FaultySnapshotStore<S> {
    inner: S,
    fail_gets: AtomicBool,
    corrupt_gets: AtomicBool,
    fail_saves: AtomicBool,
    fail_every: AtomicU64,
    calls: AtomicU64,
    injected: AtomicU64,
    get_delay_ms: AtomicU64,
    open: watch::Sender<bool>,
    written: Mutex<Vec<Snapshot>>,
}

impl<S: SnapshotStore> FaultySnapshotStore<S> {
    /// A wrapper that behaves like `inner` until told otherwise.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            fail_gets: AtomicBool::new(false),
            corrupt_gets: AtomicBool::new(false),
            fail_saves: AtomicBool::new(false),
            fail_every: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            get_delay_ms: AtomicU64::new(0),
            open: watch::Sender::new(true),
            written: Mutex::new(Vec::new()),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Reads fail with a backend error (an outage).
    pub fn fail_gets(&self, on: bool) {
        self.fail_gets.store(on, Ordering::SeqCst);
    }

    /// Reads fail with a `Deserialization` error (a corrupt row).
    pub fn corrupt_gets(&self, on: bool) {
        self.corrupt_gets.store(on, Ordering::SeqCst);
    }

    /// Writes fail with a backend error.
    pub fn fail_saves(&self, on: bool) {
        self.fail_saves.store(on, Ordering::SeqCst);
    }

    /// Every `k`-th read or write fails with a backend error (0: none).
    pub fn fail_every(&self, k: u64) {
        self.fail_every.store(k, Ordering::SeqCst);
    }

    /// Reads take this long before they answer.
    pub fn delay_gets(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.get_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// How many failures the wrapper injected (outages, corrupt rows, failed writes).
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Whether this call is one of every `k`.
    fn unlucky(&self) -> bool {
        let k = self.fail_every.load(Ordering::SeqCst);
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        k > 0 && call.is_multiple_of(k)
    }

    fn inject<T>(&self, error: SnapshotError) -> Result<T, SnapshotError> {
        self.injected.fetch_add(1, Ordering::SeqCst);
        Err(error)
    }

    /// Closes the gate: writes wait until [`open_gate`](Self::open_gate).
    pub fn close_gate(&self) {
        self.open.send_replace(false);
    }

    /// Opens the gate: waiting writes proceed.
    pub fn open_gate(&self) {
        self.open.send_replace(true);
    }

    /// The snapshots written successfully, in order.
    pub fn written(&self) -> Vec<Snapshot> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The versions written successfully, in order.
    pub fn written_versions(&self) -> Vec<u64> {
        self.written().iter().map(|s| s.version).collect()
    }

    /// How long reads stall.
    pub(crate) fn read_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.get_delay_ms.load(Ordering::SeqCst))
    }

    /// The fault a read meets after its delay, if any.
    pub(crate) fn read_error(
        &self,
        id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<(), SnapshotError> {
        if self.fail_gets.load(Ordering::SeqCst) || self.unlucky() {
            return self.inject(SnapshotError::backend("faulty", "injected outage"));
        }
        if self.corrupt_gets.load(Ordering::SeqCst) {
            return self.inject(SnapshotError::deserialization(
                id.clone(),
                aggregate_type,
                "injected corrupt row",
            ));
        }
        Ok(())
    }

    async fn read_fault(
        &self,
        id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<(), SnapshotError> {
        let delay = self.read_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.read_error(id, aggregate_type)
    }

    /// Waits at the gate, then fails the write if a fault says so.
    pub(crate) async fn write_fault(&self) -> Result<(), SnapshotError> {
        let mut open = self.open.subscribe();
        // The sender lives in self, so the wait ends when the gate opens.
        let _ = open.wait_for(|open| *open).await;
        if self.fail_saves.load(Ordering::SeqCst) || self.unlucky() {
            return self.inject(SnapshotError::backend("faulty", "injected write failure"));
        }
        Ok(())
    }

    /// Logs a snapshot as written.
    pub(crate) fn note_written(&self, snapshot: &Snapshot) {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(snapshot.clone());
    }
}

#[async_trait]
impl<S: SnapshotStore> SnapshotStore for FaultySnapshotStore<S> {
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        self.write_fault().await?;
        self.inner.save_snapshot(snapshot).await?;
        self.note_written(snapshot);
        Ok(())
    }

    async fn get_snapshot(
        &self,
        id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.read_fault(id, aggregate_type).await?;
        self.inner.get_snapshot(id, aggregate_type).await
    }

    async fn get_snapshot_at(
        &self,
        id: &AggregateId,
        aggregate_type: &str,
        max_version: u64,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.read_fault(id, aggregate_type).await?;
        self.inner
            .get_snapshot_at(id, aggregate_type, max_version)
            .await
    }

    async fn delete_snapshot(
        &self,
        id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        self.inner.delete_snapshot(id, aggregate_type).await
    }

    async fn snapshot_exists(
        &self,
        id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        self.inner.snapshot_exists(id, aggregate_type).await
    }

    async fn delete_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, SnapshotError> {
        self.inner
            .delete_snapshots_by_type(aggregate_type, schema_version_below)
            .await
    }
}

/// An event store that records the ranges loaded and can hide the start of every stream, as
/// if that history had been archived.
#[derive(Debug)]
pub struct RecordingEventStore<E> {
    inner: E,
    hidden_through: AtomicU64,
    loads: Mutex<Vec<(u64, Option<u64>)>>,
    appends: AtomicU64,
    held: Mutex<Option<Arc<Barrier>>>,
}

impl<E: EventStore> RecordingEventStore<E> {
    /// A wrapper that behaves like `inner`.
    pub fn new(inner: E) -> Self {
        Self {
            inner,
            hidden_through: AtomicU64::new(0),
            loads: Mutex::new(Vec::new()),
            appends: AtomicU64::new(0),
            held: Mutex::new(None),
        }
    }

    /// The next `n` appends wait for each other and then run together, so writers that read
    /// the same version collide; later appends run at once.
    pub fn hold_appends(&self, n: usize) {
        *self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(Barrier::new(n)));
    }

    /// Loads no longer return events up to and including `version`.
    pub fn archive_through(&self, version: u64) {
        self.hidden_through.store(version, Ordering::SeqCst);
    }

    pub(crate) fn record_load(&self, from_version: u64, to_version: Option<u64>) {
        self.loads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((from_version, to_version));
    }

    pub(crate) fn hidden(&self) -> u64 {
        self.hidden_through.load(Ordering::SeqCst)
    }

    /// Counts an append and holds it as [`hold_appends`](Self::hold_appends) says.
    pub(crate) async fn enter_append(&self) {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(barrier) = held
            && barrier.wait().await.is_leader()
        {
            *self
                .held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }

    /// How many appends were called so far, whatever their outcome.
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::SeqCst)
    }

    /// The `(from_version, to_version)` of every load so far.
    pub fn loads(&self) -> Vec<(u64, Option<u64>)> {
        self.loads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl<E: EventStore> EventStore for RecordingEventStore<E> {
    async fn append(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<u64, EventStoreError> {
        self.enter_append().await;
        self.inner
            .append(aggregate_id, aggregate_type, expected_version, events)
            .await
    }

    async fn load(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        from_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        self.record_load(from_version, to_version);
        self.inner
            .load(
                aggregate_id,
                aggregate_type,
                from_version.max(self.hidden()),
                to_version,
            )
            .await
    }

    async fn current_version(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<u64, EventStoreError> {
        self.inner
            .current_version(aggregate_id, aggregate_type)
            .await
    }

    async fn list_aggregate_ids(
        &self,
        aggregate_type: &str,
        after: Option<&AggregateId>,
        limit: usize,
    ) -> Result<Vec<AggregateId>, EventStoreError> {
        self.inner
            .list_aggregate_ids(aggregate_type, after, limit)
            .await
    }

    async fn load_batches(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        from_version: u64,
        to_version: Option<u64>,
        sink: &mut (dyn FnMut(Vec<RecordedEvent>) -> ControlFlow<()> + Send),
    ) -> Result<(), EventStoreError> {
        self.record_load(from_version, to_version);
        self.inner
            .load_batches(
                aggregate_id,
                aggregate_type,
                from_version.max(self.hidden()),
                to_version,
                sink,
            )
            .await
    }
}
