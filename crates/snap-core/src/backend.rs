//! The [`Backend`] trait: one database handle that loads a stream through its snapshot in one
//! read and commits events with their snapshot in one transaction.

use std::borrow::Cow;
use std::fmt::Debug;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::id::AggregateId;

use crate::error::{EventStoreError, SnapshotError};
use crate::event::{DynEventStore, EventStore, NewEvent, RecordedEvent};
use crate::snapshot::Snapshot;
use crate::store::{DynSnapshotStore, SnapshotStore};

/// Events and snapshots behind one handle: what the repositories load and save through.
///
/// A backend implements it once on its database handle, so that a load through a snapshot is
/// one read (one round trip where the database allows) and a save that snapshots is one
/// transaction. Any [`EventStore`](crate::EventStore) and
/// [`SnapshotStore`](crate::SnapshotStore) pair becomes a `Backend` through the repository
/// crate's `StorePair` adapter.
///
/// Semantics every implementation shares (checked by `snap-testkit`):
/// - [`load`](Self::load) reads one consistent view of the stream. With
///   [`LoadRequest::through_snapshot`] it first hands the sink the latest snapshot at or below
///   `up_to` ([`LoadSink::snapshot`]); if the sink takes it, the events after its version
///   follow, otherwise (or when there is none, or it cannot be read) every event from version 1
///   follows. Events come in ascending version order, up to `up_to`.
/// - [`commit`](Self::commit) appends like [`EventStore::append`](crate::EventStore::append)
///   and, in the same transaction, saves the commit's snapshot under the never-regress rule of
///   [`SnapshotStore::save_snapshot`](crate::SnapshotStore::save_snapshot). A failing snapshot
///   never fails the commit and never loses its events: it is reported in
///   [`Committed::snapshot`] and the events commit.
/// - The plain stores ([`event_store`](Self::event_store),
///   [`snapshot_store`](Self::snapshot_store)) see the same data, for history, listing,
///   deletion and administration.
#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// Reads the stream of `request` into `sink`; see the trait docs for the order.
    async fn load(
        &self,
        request: &LoadRequest<'_>,
        sink: &mut dyn LoadSink,
    ) -> Result<Loaded, EventStoreError>;

    /// Appends the commit's events at its expected version and, in the same transaction, saves
    /// its snapshot if it has one. A version conflict is [`EventStoreError::Concurrency`] and
    /// writes nothing.
    async fn commit(&self, commit: Commit<'_>) -> Result<Committed, EventStoreError>;

    /// The events as a plain [`EventStore`](crate::EventStore), on the same data.
    fn event_store(&self) -> Arc<DynEventStore>;

    /// The snapshots as a plain [`SnapshotStore`](crate::SnapshotStore), on the same data;
    /// `None` when this backend keeps no snapshots.
    fn snapshot_store(&self) -> Option<Arc<DynSnapshotStore>>;

    /// The backend's name in spans and logs: `"sqlite"`, `"postgres"`, `"memory"`, ...
    fn name(&self) -> &'static str {
        "custom"
    }

    /// Whether every call is already in a store span (a [`Traced`](crate::Traced) layer), so
    /// the repositories do not add a second one.
    fn traced(&self) -> bool {
        false
    }
}

/// A backend chosen at run time.
pub type DynBackend = dyn Backend;

#[async_trait]
impl<T: Backend + ?Sized> Backend for Arc<T> {
    async fn load(
        &self,
        request: &LoadRequest<'_>,
        sink: &mut dyn LoadSink,
    ) -> Result<Loaded, EventStoreError> {
        (**self).load(request, sink).await
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Committed, EventStoreError> {
        (**self).commit(commit).await
    }

    fn event_store(&self) -> Arc<DynEventStore> {
        (**self).event_store()
    }

    fn snapshot_store(&self) -> Option<Arc<DynSnapshotStore>> {
        (**self).snapshot_store()
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn traced(&self) -> bool {
        (**self).traced()
    }
}

/// Shares a backend as `Arc<dyn Backend>`; an `Arc<dyn Backend>` given as is comes back as is,
/// not wrapped a second time.
pub fn share_backend<B: Backend>(backend: B) -> Arc<DynBackend> {
    share::<B, DynBackend>(backend, |backend| Arc::new(backend))
}

/// Shares an event store as `Arc<dyn EventStore>`, without wrapping one that already is.
pub fn share_event_store<E: EventStore>(store: E) -> Arc<DynEventStore> {
    share::<E, DynEventStore>(store, |store| Arc::new(store))
}

/// Shares a snapshot store as `Arc<dyn SnapshotStore>`, without wrapping one that already is.
pub fn share_snapshot_store<S: SnapshotStore>(store: S) -> Arc<DynSnapshotStore> {
    share::<S, DynSnapshotStore>(store, |store| Arc::new(store))
}

/// `value` itself when it is an `Arc<D>` already, `wrap(value)` otherwise.
fn share<T: 'static, D: ?Sized + 'static>(value: T, wrap: impl FnOnce(T) -> Arc<D>) -> Arc<D> {
    let mut slot = Some(value);
    let any: &mut dyn std::any::Any = &mut slot;
    if let Some(shared) = any.downcast_mut::<Option<Arc<D>>>().and_then(Option::take) {
        return shared;
    }
    match slot {
        Some(value) => wrap(value),
        // Taken above only when `T` is `Arc<D>`, which returned.
        None => unreachable!("the value was taken only to be returned"),
    }
}

/// What to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadRequest<'a> {
    /// The aggregate's type.
    pub aggregate_type: &'a str,
    /// The aggregate.
    pub aggregate_id: &'a AggregateId,
    /// The last version to read; `None`: to the head.
    pub up_to: Option<u64>,
    /// Whether to start from the latest snapshot at or below `up_to` (or to replay the whole
    /// stream).
    pub through_snapshot: bool,
    /// How long to wait for a snapshot read that is separate from the event read before
    /// giving up on the snapshot; `None`: no limit. Backends that read both at once may
    /// ignore it.
    pub snapshot_timeout: Option<Duration>,
    /// Whether the sink reads only each event's version and payload. A backend may then skip
    /// the rest: [`StoredEvent::event_id`] is nil, [`StoredEvent::event_type`] empty,
    /// [`StoredEvent::metadata`] `null` and [`StoredEvent::recorded_at`] the Unix epoch.
    /// `false` (the default) hands every field as stored.
    pub payload_only: bool,
}

impl<'a> LoadRequest<'a> {
    /// The whole stream through its latest snapshot.
    pub fn new(aggregate_type: &'a str, aggregate_id: &'a AggregateId) -> Self {
        Self {
            aggregate_type,
            aggregate_id,
            up_to: None,
            through_snapshot: true,
            snapshot_timeout: None,
            payload_only: false,
        }
    }

    /// Whether the sink reads only each event's version and payload; see
    /// [`payload_only`](Self::payload_only).
    #[must_use]
    pub fn payload_only(mut self, payload_only: bool) -> Self {
        self.payload_only = payload_only;
        self
    }

    /// Reads up to `version` (inclusive), through the latest snapshot at or below it.
    #[must_use]
    pub fn up_to(mut self, version: Option<u64>) -> Self {
        self.up_to = version;
        self
    }

    /// Whether to start from a snapshot.
    #[must_use]
    pub fn through_snapshot(mut self, through_snapshot: bool) -> Self {
        self.through_snapshot = through_snapshot;
        self
    }

    /// The limit for a separate snapshot read.
    #[must_use]
    pub fn snapshot_timeout(mut self, limit: Option<Duration>) -> Self {
        self.snapshot_timeout = limit;
        self
    }
}

/// The snapshot a load found, as [`LoadSink::snapshot`] receives it.
#[derive(Debug)]
#[non_exhaustive]
pub enum SnapshotRead {
    /// The latest snapshot at or below the load's `up_to`.
    Found(Snapshot),
    /// No snapshot at or below `up_to`.
    Missing,
    /// The snapshot could not be read (a corrupt row, a failing store). The load goes on
    /// without it.
    Failed(SnapshotError),
    /// A separate snapshot read ran out of [`LoadRequest::snapshot_timeout`].
    TimedOut,
}

/// Receives what a [`Backend::load`] reads.
pub trait LoadSink: Send {
    /// Called once, before any event, when the load is through a snapshot. Returns whether to
    /// start from it: `true` (only for [`SnapshotRead::Found`]) and the events after its version
    /// follow; `false` and every event from version 1 follows.
    fn snapshot(&mut self, read: SnapshotRead) -> bool;

    /// One event, in ascending version order. [`ControlFlow::Break`] stops the load.
    fn event(&mut self, event: &StoredEvent<'_>) -> ControlFlow<()>;
}

/// What a [`Backend::load`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Loaded {
    /// The stream's version in the load's view, capped at `up_to`: 0 when the stream is empty,
    /// and the version of the last event handed over when the sink took every event.
    pub version: u64,
}

impl Loaded {
    /// A load that saw the stream at `version`.
    pub fn new(version: u64) -> Self {
        Self { version }
    }

    /// A load that handed over no event and saw the stream's head at `head`: the head, capped
    /// at the request's `up_to`.
    pub fn at_head(head: u64, up_to: Option<u64>) -> Self {
        Self::new(up_to.map_or(head, |up_to| head.min(up_to)))
    }
}

/// One stored event as a load hands it over, borrowed from the row it was read from so the
/// payload is decoded once, straight into the event type. Under
/// [`LoadRequest::payload_only`] only the version and the payload are sure to be as stored.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct StoredEvent<'a> {
    /// Its version in the stream: 1 for the first event.
    pub version: u64,
    /// The id given at append.
    pub event_id: Uuid,
    /// The event's type name.
    pub event_type: &'a str,
    /// The event.
    pub payload: Payload<'a>,
    /// The metadata given at append.
    pub metadata: Payload<'a>,
    /// When the append committed, UTC, to the microsecond.
    pub recorded_at: OffsetDateTime,
}

impl<'a> StoredEvent<'a> {
    /// An event read from a store.
    pub fn new(
        version: u64,
        event_id: Uuid,
        event_type: &'a str,
        payload: Payload<'a>,
        metadata: Payload<'a>,
        recorded_at: OffsetDateTime,
    ) -> Self {
        Self {
            version,
            event_id,
            event_type,
            payload,
            metadata,
            recorded_at,
        }
    }

    /// An event of a payload-only load: its version and payload, the rest left out.
    pub fn payload_only(version: u64, payload: Payload<'a>) -> Self {
        Self::new(
            version,
            Uuid::nil(),
            "",
            payload,
            Payload::Text("null"),
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    /// A view of a [`RecordedEvent`].
    pub fn of(event: &'a RecordedEvent) -> Self {
        Self::new(
            event.version,
            event.event_id,
            &event.event_type,
            Payload::Value(&event.payload),
            Payload::Value(&event.metadata),
            event.recorded_at,
        )
    }
}

/// JSON as a store holds it: text read from a row, or a value kept in memory.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// JSON text.
    Text(&'a str),
    /// A JSON value.
    Value(&'a Value),
}

impl Payload<'_> {
    /// Decodes it into `T`, in one pass.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match self {
            Self::Text(text) => serde_json::from_str(text),
            Self::Value(value) => T::deserialize(*value),
        }
    }

    /// As a JSON value.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            Self::Text(text) => serde_json::from_str(text),
            Self::Value(value) => Ok((*value).clone()),
        }
    }
}

/// A save: events to append at an expected version and, optionally, the snapshot of the state
/// they lead to, to store in the same transaction.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Commit<'a> {
    /// The aggregate's type.
    pub aggregate_type: String,
    /// The aggregate.
    pub aggregate_id: AggregateId,
    /// The version the stream must be at (0 for a new aggregate).
    pub expected_version: u64,
    /// The events to append, borrowed from the aggregate that recorded them when the caller
    /// keeps them (the repository does, for a retry after a failed save).
    pub events: Cow<'a, [NewEvent]>,
    /// The snapshot to save with them, at `expected_version + events.len()`.
    pub snapshot: Option<Snapshot>,
    /// How long a snapshot write that is separate from the append may take before it counts
    /// as failed; `None`: no limit. Backends that write both in one transaction may ignore it.
    pub snapshot_timeout: Option<Duration>,
}

impl<'a> Commit<'a> {
    /// Events to append at `expected_version`, without a snapshot: a `Vec` or a borrowed
    /// slice.
    pub fn new(
        aggregate_type: impl Into<String>,
        aggregate_id: impl Into<AggregateId>,
        expected_version: u64,
        events: impl Into<Cow<'a, [NewEvent]>>,
    ) -> Self {
        Self {
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
            expected_version,
            events: events.into(),
            snapshot: None,
            snapshot_timeout: None,
        }
    }

    /// The snapshot to save in the same transaction.
    #[must_use]
    pub fn with_snapshot(mut self, snapshot: Option<Snapshot>) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// The limit for a separate snapshot write.
    #[must_use]
    pub fn snapshot_timeout(mut self, limit: Option<Duration>) -> Self {
        self.snapshot_timeout = limit;
        self
    }
}

/// What a [`Backend::commit`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct Committed {
    /// The stream's version after the append.
    pub version: u64,
    /// What became of the commit's snapshot.
    pub snapshot: SnapshotWrite,
}

impl Committed {
    /// A commit that reached `version`.
    pub fn new(version: u64, snapshot: SnapshotWrite) -> Self {
        Self { version, snapshot }
    }
}

/// What became of the snapshot of a [`Commit`].
#[derive(Debug)]
#[non_exhaustive]
pub enum SnapshotWrite {
    /// The commit had no snapshot.
    NotAsked,
    /// The snapshot is stored (or a higher version already was).
    Written,
    /// The snapshot was not stored; the events were.
    Failed(SnapshotError),
}

impl SnapshotWrite {
    /// The outcome of a snapshot write that is separate from the append, run under the
    /// commit's [`snapshot_timeout`](Commit::snapshot_timeout): `None` when it ran out, which
    /// counts as failed (as `backend`'s error).
    pub fn after(backend: &'static str, write: Option<Result<(), SnapshotError>>) -> Self {
        match write {
            Some(Ok(())) => Self::Written,
            Some(Err(error)) => Self::Failed(error),
            None => Self::Failed(SnapshotError::backend(
                backend,
                "the snapshot write timed out",
            )),
        }
    }
}
