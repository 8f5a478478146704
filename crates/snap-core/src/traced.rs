//! Store-level tracing: one layer that puts a span around every call of a backend, an event
//! store or a snapshot store, whichever database is underneath.
//!
//! The repositories add it to their backend themselves; wrap a store in [`Traced`] to trace
//! calls made on it directly. Every span has the fields `backend` (`"sqlite"`, `"postgres"`,
//! `"memory"`, ...), `aggregate_type`, `aggregate_id` and `version` where the call has them,
//! and `error` when it fails. The names:
//!
//! | span | call | `version` |
//! |---|---|---|
//! | `snap.backend.load` | [`Backend::load`] | the version loaded to |
//! | `snap.backend.commit` | [`Backend::commit`] | the stream's new version (`snapshot` says what became of the snapshot) |
//! | `snap.events.append` | [`EventStore::append`] | the stream's new version |
//! | `snap.events.load` | [`EventStore::load`], [`EventStore::load_batches`] | the last version asked for (`events`: how many came back) |
//! | `snap.events.current_version` | [`EventStore::current_version`] | the stream's version |
//! | `snap.events.list_ids` | [`EventStore::list_aggregate_ids`] | - |
//! | `snap.snapshot.save` | [`SnapshotStore::save_snapshot`] | the snapshot's version |
//! | `snap.snapshot.get` | [`SnapshotStore::get_snapshot`], [`SnapshotStore::get_snapshot_at`] | the version found |
//! | `snap.snapshot.delete` | [`SnapshotStore::delete_snapshot`] | - |
//! | `snap.snapshot.exists` | [`SnapshotStore::snapshot_exists`] | - |
//! | `snap.snapshot.delete_by_type` | [`SnapshotStore::delete_snapshots_by_type`] | - |
//!
//! The spans are at `INFO` level with the target `snap_core::traced`; with no subscriber
//! listening they cost a check of a static flag.

use std::fmt::Display;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::id::AggregateId;
use async_trait::async_trait;
use tracing::field::{Empty, display};
use tracing::{Instrument, Span, info_span};

use crate::backend::{Backend, Commit, Committed, LoadRequest, LoadSink, Loaded, SnapshotWrite};
use crate::error::{EventStoreError, SnapshotError};
use crate::event::{DynEventStore, EventStore, NewEvent, RecordedEvent};
use crate::snapshot::Snapshot;
use crate::store::{DynSnapshotStore, SnapshotStore};

/// A backend or store whose every call runs in a tracing span; see the
/// [module docs](self) for the spans and their fields.
#[derive(Debug, Clone)]
pub struct Traced<T> {
    inner: T,
    backend: &'static str,
}

impl<T> Traced<T> {
    /// Traces the calls of `inner`, naming it `backend` in every span.
    pub fn new(inner: T, backend: &'static str) -> Self {
        Self { inner, backend }
    }

    /// The backend or store underneath.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

/// `backend` with its calls traced, unless they already are (see [`Backend::traced`]).
pub fn trace_backend(backend: Arc<dyn Backend>) -> Arc<dyn Backend> {
    if backend.traced() {
        return backend;
    }
    let name = backend.name();
    Arc::new(Traced::new(backend, name))
}

/// Runs `call` in `span`; records `error` if it fails, or what `ok` reads off the value.
async fn run<T, E: Display>(
    span: Span,
    call: impl Future<Output = Result<T, E>>,
    ok: impl FnOnce(&Span, &T),
) -> Result<T, E> {
    let result = call.instrument(span.clone()).await;
    match &result {
        Ok(value) => ok(&span, value),
        Err(error) => {
            span.record("error", display(error));
        }
    }
    result
}

fn nothing<T>(_: &Span, _: &T) {}

#[async_trait]
impl<T: Backend> Backend for Traced<T> {
    async fn load(
        &self,
        request: &LoadRequest<'_>,
        sink: &mut dyn LoadSink,
    ) -> Result<Loaded, EventStoreError> {
        let span = info_span!(
            "snap.backend.load",
            backend = self.backend,
            aggregate_type = request.aggregate_type,
            aggregate_id = %request.aggregate_id,
            up_to = request.up_to,
            version = Empty,
            error = Empty,
        );
        run(span, self.inner.load(request, sink), |span, loaded| {
            span.record("version", loaded.version);
        })
        .await
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Committed, EventStoreError> {
        let span = info_span!(
            "snap.backend.commit",
            backend = self.backend,
            aggregate_type = commit.aggregate_type.as_str(),
            aggregate_id = %commit.aggregate_id,
            expected_version = commit.expected_version,
            events = commit.events.len(),
            version = Empty,
            snapshot = Empty,
            error = Empty,
        );
        run(span, self.inner.commit(commit), |span, committed| {
            span.record("version", committed.version);
            span.record(
                "snapshot",
                match &committed.snapshot {
                    SnapshotWrite::NotAsked => "none",
                    SnapshotWrite::Written => "written",
                    SnapshotWrite::Failed(_) => "failed",
                },
            );
        })
        .await
    }

    fn event_store(&self) -> Arc<DynEventStore> {
        Arc::new(Traced::new(self.inner.event_store(), self.backend))
    }

    fn snapshot_store(&self) -> Option<Arc<DynSnapshotStore>> {
        let store = self.inner.snapshot_store()?;
        Some(Arc::new(Traced::new(store, self.backend)))
    }

    fn name(&self) -> &'static str {
        self.backend
    }

    fn traced(&self) -> bool {
        true
    }
}

/// The span of a read of events.
fn events_load_span(backend: &'static str, id: &AggregateId, ty: &str, to: Option<u64>) -> Span {
    info_span!(
        "snap.events.load",
        backend,
        aggregate_type = ty,
        aggregate_id = %id,
        version = to,
        events = Empty,
        error = Empty,
    )
}

#[async_trait]
impl<T: EventStore> EventStore for Traced<T> {
    async fn append(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<u64, EventStoreError> {
        let span = info_span!(
            "snap.events.append",
            backend = self.backend,
            aggregate_type,
            aggregate_id = %aggregate_id,
            expected_version,
            events = events.len(),
            version = Empty,
            error = Empty,
        );
        let call = self
            .inner
            .append(aggregate_id, aggregate_type, expected_version, events);
        run(span, call, |span, version| {
            span.record("version", version);
        })
        .await
    }

    async fn load(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        from_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let span = events_load_span(self.backend, aggregate_id, aggregate_type, to_version);
        let call = self
            .inner
            .load(aggregate_id, aggregate_type, from_version, to_version);
        run(span, call, |span, events| {
            span.record("events", events.len());
        })
        .await
    }

    async fn current_version(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<u64, EventStoreError> {
        let span = info_span!(
            "snap.events.current_version",
            backend = self.backend,
            aggregate_type,
            aggregate_id = %aggregate_id,
            version = Empty,
            error = Empty,
        );
        let call = self.inner.current_version(aggregate_id, aggregate_type);
        run(span, call, |span, version| {
            span.record("version", version);
        })
        .await
    }

    async fn list_aggregate_ids(
        &self,
        aggregate_type: &str,
        after: Option<&AggregateId>,
        limit: usize,
    ) -> Result<Vec<AggregateId>, EventStoreError> {
        let span = info_span!(
            "snap.events.list_ids",
            backend = self.backend,
            aggregate_type,
            limit,
            error = Empty,
        );
        let call = self.inner.list_aggregate_ids(aggregate_type, after, limit);
        run(span, call, nothing).await
    }

    async fn load_batches(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        from_version: u64,
        to_version: Option<u64>,
        sink: &mut (dyn FnMut(Vec<RecordedEvent>) -> ControlFlow<()> + Send),
    ) -> Result<(), EventStoreError> {
        let span = events_load_span(self.backend, aggregate_id, aggregate_type, to_version);
        let mut count = 0;
        let mut counting = |batch: Vec<RecordedEvent>| {
            count += batch.len();
            sink(batch)
        };
        let call = self.inner.load_batches(
            aggregate_id,
            aggregate_type,
            from_version,
            to_version,
            &mut counting,
        );
        let result = run(span.clone(), call, nothing).await;
        span.record("events", count);
        result
    }
}

/// The span of a snapshot call on one aggregate.
fn snapshot_span(name: &'static str, backend: &'static str, id: &AggregateId, ty: &str) -> Span {
    // One call site per name, so each span keeps its own name.
    match name {
        "get" => info_span!(
            "snap.snapshot.get",
            backend,
            aggregate_type = ty,
            aggregate_id = %id,
            version = Empty,
            error = Empty,
        ),
        "delete" => info_span!(
            "snap.snapshot.delete",
            backend,
            aggregate_type = ty,
            aggregate_id = %id,
            error = Empty,
        ),
        _ => info_span!(
            "snap.snapshot.exists",
            backend,
            aggregate_type = ty,
            aggregate_id = %id,
            error = Empty,
        ),
    }
}

#[allow(
    clippy::ref_option,
    reason = "called as `ok` by `run`, which hands over a reference to the result's value"
)]
fn found(span: &Span, snapshot: &Option<Snapshot>) {
    if let Some(snapshot) = snapshot {
        span.record("version", snapshot.version);
    }
}

#[async_trait]
impl<T: SnapshotStore> SnapshotStore for Traced<T> {
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        let span = info_span!(
            "snap.snapshot.save",
            backend = self.backend,
            aggregate_type = snapshot.aggregate_type.as_str(),
            aggregate_id = %snapshot.aggregate_id,
            version = snapshot.version,
            schema_version = snapshot.schema_version,
            error = Empty,
        );
        run(span, self.inner.save_snapshot(snapshot), nothing).await
    }

    async fn get_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        let span = snapshot_span("get", self.backend, aggregate_id, aggregate_type);
        let call = self.inner.get_snapshot(aggregate_id, aggregate_type);
        run(span, call, found).await
    }

    async fn get_snapshot_at(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        max_version: u64,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        let span = snapshot_span("get", self.backend, aggregate_id, aggregate_type);
        let call = self
            .inner
            .get_snapshot_at(aggregate_id, aggregate_type, max_version);
        run(span, call, found).await
    }

    async fn delete_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        let span = snapshot_span("delete", self.backend, aggregate_id, aggregate_type);
        let call = self.inner.delete_snapshot(aggregate_id, aggregate_type);
        run(span, call, nothing).await
    }

    async fn snapshot_exists(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        let span = snapshot_span("exists", self.backend, aggregate_id, aggregate_type);
        let call = self.inner.snapshot_exists(aggregate_id, aggregate_type);
        run(span, call, nothing).await
    }

    async fn delete_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, SnapshotError> {
        let span = info_span!(
            "snap.snapshot.delete_by_type",
            backend = self.backend,
            aggregate_type,
            schema_version_below,
            error = Empty,
        );
        let call = self
            .inner
            .delete_snapshots_by_type(aggregate_type, schema_version_below);
        run(span, call, nothing).await
    }
}
