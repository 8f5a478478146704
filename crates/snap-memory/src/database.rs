//! [`InMemoryDatabase`]: both in-memory stores behind one handle, as a [`Backend`].

use std::ops::ControlFlow;
use std::sync::Arc;

use snap_core::{
    Backend, Commit, Committed, DynEventStore, DynSnapshotStore, EventStoreError, LoadRequest,
    LoadSink, Loaded, SnapshotRead, SnapshotWrite, StoredEvent, async_trait, validate,
};

use crate::event_store::append_to;
use crate::snapshot_store::{latest_at, save_into};
use crate::{InMemoryEventStore, InMemorySnapshotStore};

/// An in-memory event store and snapshot store behind one handle: a [`Backend`] whose load
/// reads the snapshot and then hands the events to the sink straight from the stream, with no
/// copy, and whose commit stores events and snapshot under the event lock, so no load sees one
/// without the other. Clones share the data.
///
/// ```
/// use snap_memory::InMemoryDatabase;
///
/// let database = InMemoryDatabase::new().keep_history(3);
/// assert_eq!(database.snapshot_store().retained_versions(), 3);
/// assert_eq!(database.event_store().event_count(), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemoryDatabase {
    events: InMemoryEventStore,
    snapshots: InMemorySnapshotStore,
}

impl InMemoryDatabase {
    /// An empty database that keeps the latest snapshot per aggregate.
    pub fn new() -> Self {
        Self::default()
    }

    /// A database on the data of existing stores (clones share it), keeping the snapshot
    /// versions `snapshots` keeps.
    pub fn from_stores(events: InMemoryEventStore, snapshots: InMemorySnapshotStore) -> Self {
        Self { events, snapshots }
    }

    /// This handle keeping the `k` highest snapshot versions per aggregate (the latest is
    /// always kept), as a backend and in its snapshot store. Handles share the data.
    #[must_use]
    pub fn keep_history(mut self, k: usize) -> Self {
        self.snapshots = self.snapshots.keep_history(k);
        self
    }

    /// The event store, on this database's data.
    pub fn event_store(&self) -> InMemoryEventStore {
        self.events.clone()
    }

    /// The snapshot store, on this database's data.
    pub fn snapshot_store(&self) -> InMemorySnapshotStore {
        self.snapshots.clone()
    }
}

#[async_trait]
impl Backend for InMemoryDatabase {
    async fn load(
        &self,
        request: &LoadRequest<'_>,
        sink: &mut dyn LoadSink,
    ) -> Result<Loaded, EventStoreError> {
        validate::aggregate_type(request.aggregate_type)?;
        let (id, ty) = (request.aggregate_id, request.aggregate_type);
        let up_to = request.up_to.unwrap_or(u64::MAX);
        let mut from = 0;
        if request.through_snapshot {
            // Taken and released before the events: a commit holds the event lock while it
            // stores its snapshot, so the two locks are never waited for the other way round.
            let found = latest_at(&self.snapshots.lock(), id, ty, up_to);
            let version = found.as_ref().map_or(0, |s| s.version);
            let read = found.map_or(SnapshotRead::Missing, SnapshotRead::Found);
            if sink.snapshot(read) {
                from = version;
            }
        }
        let streams = self.events.lock();
        let stream = streams
            .get(ty)
            .and_then(|ids| ids.get(id))
            .map_or(&[][..], Vec::as_slice);
        let head = stream.len() as u64;
        // Versions are 1-based and dense, so version v sits at index v - 1.
        let start = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(stream.len());
        let end = usize::try_from(up_to)
            .unwrap_or(usize::MAX)
            .min(stream.len());
        let mut last = None;
        for event in stream.get(start..end.max(start)).unwrap_or_default() {
            last = Some(event.version);
            if sink.event(&StoredEvent::of(event)) == ControlFlow::Break(()) {
                break;
            }
        }
        Ok(last.map_or_else(|| Loaded::at_head(head, Some(up_to)), Loaded::new))
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Committed, EventStoreError> {
        let Commit {
            aggregate_type,
            aggregate_id,
            expected_version,
            events,
            snapshot,
            ..
        } = commit;
        validate::append(&aggregate_type, expected_version, &events)?;
        let events = events.into_owned();
        let mut streams = self.events.lock();
        let version = append_to(
            &mut streams,
            &aggregate_id,
            &aggregate_type,
            expected_version,
            events,
        )?;
        let written = match snapshot.map(|s| validate::snapshot(&s).map(|()| s)) {
            None => SnapshotWrite::NotAsked,
            Some(Err(error)) => SnapshotWrite::Failed(error.into()),
            Some(Ok(snapshot)) => {
                let keep = self.snapshots.retained_versions();
                save_into(&mut self.snapshots.lock(), &snapshot, keep);
                SnapshotWrite::Written
            }
        };
        drop(streams);
        Ok(Committed::new(version, written))
    }

    fn event_store(&self) -> Arc<DynEventStore> {
        Arc::new(self.events.clone())
    }

    fn snapshot_store(&self) -> Option<Arc<DynSnapshotStore>> {
        Some(Arc::new(self.snapshots.clone()))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
