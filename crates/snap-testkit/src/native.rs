//! The repository cases on a backend's own [`Backend`]: [`Native`] runs them there instead of
//! through a [`StorePair`](snap_repo::StorePair), and [`FaultyBackend`] puts the faults of
//! [`faults`](crate::faults) in front of it.

use std::ops::ControlFlow;
use std::sync::Arc;

use snap_core::{
    Backend, Commit, Committed, DynBackend, DynEventStore, DynSnapshotStore, EventStore,
    EventStoreError, LoadRequest, LoadSink, Loaded, SnapshotRead, SnapshotStore, SnapshotWrite,
    StoredEvent, async_trait,
};

use crate::RepositoryHarness;
use crate::faults::{FaultySnapshotStore, RecordingEventStore};

/// Runs the repository cases of harness `H` on its backend's own [`Backend`]
/// ([`RepositoryHarness::native`]) instead of on a pair of stores:
/// `snap_testkit::repository_conformance!(snap_testkit::Native(MyHarness))`.
#[derive(Debug, Clone)]
pub struct Native<H>(pub H);

impl<H: RepositoryHarness> RepositoryHarness for Native<H> {
    type Events = H::Events;
    type Snapshots = H::Snapshots;

    async fn open(&self, keep_history: usize) -> (Self::Events, Self::Snapshots) {
        self.0.open(keep_history).await
    }

    fn native(
        &self,
        stores: &(Self::Events, Self::Snapshots),
        keep_history: usize,
    ) -> Option<Arc<DynBackend>> {
        self.0.native(stores, keep_history)
    }

    fn use_native(&self) -> bool {
        true
    }

    fn unavailable(&self) -> Option<String> {
        self.0.unavailable()
    }
}

/// A backend's own [`Backend`] behind the faults of a [`FaultySnapshotStore`] and the
/// recording of a [`RecordingEventStore`], so each repository case can steer it as it steers
/// a pair of wrapped stores: a failing, corrupt or slow snapshot read replaces what the load
/// read; a failing snapshot write is taken out of the commit and reported failed; archived
/// history is withheld from the sink; appends are counted and held.
#[derive(Debug)]
pub struct FaultyBackend<E, S> {
    native: Arc<DynBackend>,
    events: Arc<RecordingEventStore<E>>,
    snapshots: Arc<FaultySnapshotStore<S>>,
}

impl<E: EventStore, S: SnapshotStore> FaultyBackend<E, S> {
    /// `native`, steered by the switches of `events` and `snapshots` (wrappers of stores on
    /// the same data).
    pub fn new(
        native: Arc<DynBackend>,
        events: Arc<RecordingEventStore<E>>,
        snapshots: Arc<FaultySnapshotStore<S>>,
    ) -> Self {
        Self {
            native,
            events,
            snapshots,
        }
    }
}

/// Passes a load on to the test's sink, with a snapshot fault in place of what was read and
/// archived events withheld.
struct Steered<'s> {
    sink: &'s mut dyn LoadSink,
    replace: Option<SnapshotRead>,
    hidden: u64,
    from: u64,
}

impl LoadSink for Steered<'_> {
    fn snapshot(&mut self, read: SnapshotRead) -> bool {
        let read = self.replace.take().unwrap_or(read);
        let version = match &read {
            SnapshotRead::Found(snapshot) => snapshot.version,
            _ => 0,
        };
        let taken = self.sink.snapshot(read);
        if taken {
            self.from = version;
        }
        taken
    }

    fn event(&mut self, event: &StoredEvent<'_>) -> ControlFlow<()> {
        if event.version <= self.hidden {
            return ControlFlow::Continue(());
        }
        self.sink.event(event)
    }
}

#[async_trait]
impl<E: EventStore, S: SnapshotStore> Backend for FaultyBackend<E, S> {
    async fn load(
        &self,
        request: &LoadRequest<'_>,
        sink: &mut dyn LoadSink,
    ) -> Result<Loaded, EventStoreError> {
        let mut replace = None;
        if request.through_snapshot {
            let delay = self.snapshots.read_delay();
            let limit = request.snapshot_timeout.unwrap_or(delay);
            if !delay.is_zero() {
                tokio::time::sleep(delay.min(limit)).await;
            }
            if delay > limit {
                replace = Some(SnapshotRead::TimedOut);
            } else if let Err(error) = self
                .snapshots
                .read_error(request.aggregate_id, request.aggregate_type)
            {
                replace = Some(SnapshotRead::Failed(error));
            }
        }
        let mut steered = Steered {
            sink,
            replace,
            hidden: self.events.hidden(),
            from: 0,
        };
        let loaded = self.native.load(request, &mut steered).await;
        self.events.record_load(steered.from, request.up_to);
        loaded
    }

    async fn commit(&self, mut commit: Commit<'_>) -> Result<Committed, EventStoreError> {
        self.events.enter_append().await;
        let mut refused = None;
        if commit.snapshot.is_some()
            && let Err(error) = self.snapshots.write_fault().await
        {
            commit.snapshot = None;
            refused = Some(error);
        }
        let snapshot = commit.snapshot.clone();
        let mut committed = self.native.commit(commit).await?;
        if let Some(error) = refused {
            committed.snapshot = SnapshotWrite::Failed(error);
        } else if let (SnapshotWrite::Written, Some(snapshot)) = (&committed.snapshot, &snapshot) {
            self.snapshots.note_written(snapshot);
        }
        Ok(committed)
    }

    fn event_store(&self) -> Arc<DynEventStore> {
        Arc::clone(&self.events) as Arc<DynEventStore>
    }

    fn snapshot_store(&self) -> Option<Arc<DynSnapshotStore>> {
        Some(Arc::clone(&self.snapshots) as Arc<DynSnapshotStore>)
    }

    fn name(&self) -> &'static str {
        self.native.name()
    }
}
