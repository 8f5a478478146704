//! [`StorePair`]: a [`Backend`] made of any event store and snapshot store.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use snap_core::{
    Backend, Commit, Committed, DynEventStore, DynSnapshotStore, EventStore, EventStoreError,
    LoadRequest, LoadSink, Loaded, SnapshotError, SnapshotRead, SnapshotStore, SnapshotWrite,
    StoredEvent, async_trait, share_event_store, share_snapshot_store,
};

/// A [`Backend`] made of an [`EventStore`] and, optionally, a [`SnapshotStore`], each used as
/// is: a load reads the snapshot, then the events after it; a commit appends, then saves the
/// snapshot. Third-party stores and wrappers around stores work through it unchanged; a
/// backend's own database handle does the same in one read and one transaction.
///
/// Stores given as `Arc<dyn ...>` are kept as they are, not wrapped again.
#[derive(Debug, Clone)]
pub struct StorePair {
    events: Arc<DynEventStore>,
    snapshots: Option<Arc<DynSnapshotStore>>,
}

impl StorePair {
    /// Events in `events`, snapshots in `snapshots`.
    pub fn new(events: impl EventStore, snapshots: impl SnapshotStore) -> Self {
        Self {
            events: share_event_store(events),
            snapshots: Some(share_snapshot_store(snapshots)),
        }
    }

    /// Events only: every load replays the whole stream and no snapshot is ever written.
    pub fn events_only(events: impl EventStore) -> Self {
        Self {
            events: share_event_store(events),
            snapshots: None,
        }
    }
}

/// Runs `call` within `limit`; `None` if it ran out.
async fn within<T>(limit: Option<Duration>, call: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, call).await.ok(),
        None => Some(call.await),
    }
}

impl StorePair {
    async fn read_snapshot(&self, request: &LoadRequest<'_>) -> SnapshotRead {
        let Some(store) = &self.snapshots else {
            return SnapshotRead::Missing;
        };
        let (id, ty) = (request.aggregate_id, request.aggregate_type);
        let read = async {
            match request.up_to {
                Some(version) => store.get_snapshot_at(id, ty, version).await,
                None => store.get_snapshot(id, ty).await,
            }
        };
        match within(request.snapshot_timeout, read).await {
            None => SnapshotRead::TimedOut,
            Some(Ok(Some(snapshot))) => SnapshotRead::Found(snapshot),
            Some(Ok(None)) => SnapshotRead::Missing,
            Some(Err(error)) => SnapshotRead::Failed(error),
        }
    }
}

#[async_trait]
impl Backend for StorePair {
    async fn load(
        &self,
        request: &LoadRequest<'_>,
        sink: &mut dyn LoadSink,
    ) -> Result<Loaded, EventStoreError> {
        let (id, ty) = (request.aggregate_id, request.aggregate_type);
        let mut from = 0;
        if request.through_snapshot {
            let read = self.read_snapshot(request).await;
            let version = match &read {
                SnapshotRead::Found(snapshot) => snapshot.version,
                _ => 0,
            };
            if sink.snapshot(read) {
                from = version;
            }
        }
        let mut last = None;
        let mut foreign = None;
        self.events
            .load_batches(id, ty, from, request.up_to, &mut |batch| {
                for event in &batch {
                    if event.aggregate_id != *id || event.aggregate_type != ty {
                        foreign = Some((event.aggregate_type.clone(), event.aggregate_id.clone()));
                        return ControlFlow::Break(());
                    }
                    last = Some(event.version);
                    sink.event(&StoredEvent::of(event))?;
                }
                ControlFlow::Continue(())
            })
            .await?;
        if let Some((found_type, found_id)) = foreign {
            return Err(EventStoreError::Deserialization {
                aggregate_id: id.clone(),
                aggregate_type: ty.to_owned(),
                version: last.unwrap_or(from).saturating_add(1),
                source: format!("the event store returned an event of {found_type}/{found_id}")
                    .into(),
            });
        }
        Ok(match last {
            Some(version) => Loaded::new(version),
            None => Loaded::at_head(self.events.current_version(id, ty).await?, request.up_to),
        })
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Committed, EventStoreError> {
        let Commit {
            aggregate_type,
            aggregate_id,
            expected_version,
            events,
            snapshot,
            snapshot_timeout,
            ..
        } = commit;
        let version = self
            .events
            .append(
                &aggregate_id,
                &aggregate_type,
                expected_version,
                events.into_owned(),
            )
            .await?;
        let written = match (snapshot, &self.snapshots) {
            (None, _) => SnapshotWrite::NotAsked,
            (Some(_), None) => SnapshotWrite::Failed(SnapshotError::backend(
                "store pair",
                "this backend keeps no snapshots",
            )),
            (Some(snapshot), Some(store)) => {
                let write = within(snapshot_timeout, store.save_snapshot(&snapshot)).await;
                SnapshotWrite::after("store pair", write)
            }
        };
        Ok(Committed::new(version, written))
    }

    fn event_store(&self) -> Arc<DynEventStore> {
        Arc::clone(&self.events)
    }

    fn snapshot_store(&self) -> Option<Arc<DynSnapshotStore>> {
        self.snapshots.clone()
    }

    fn name(&self) -> &'static str {
        "store pair"
    }
}
