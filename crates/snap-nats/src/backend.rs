//! [`Backend`] on [`NatsDatabase`]: a load reads the snapshot and the stream's head at once
//! and the tail from where the snapshot's save sits; a commit stores its snapshot right
//! after its events, noting where they are.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use snap_core::{
    Backend, Commit, Committed, DynEventStore, DynSnapshotStore, EventStoreError, LoadRequest,
    LoadSink, Loaded, SnapshotRead, SnapshotWrite, async_trait, validate,
};

use crate::NatsDatabase;
use crate::event_store::Head;
use crate::wire::Save;

async fn within<T>(limit: Option<Duration>, call: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, call).await.ok(),
        None => Some(call.await),
    }
}

/// Events and snapshots on one connection. A load makes two reads at once, the snapshot and
/// the stream's last save: when the events after the snapshot are all in that save (or there
/// are none), that is the whole load; otherwise it reads them from the save that holds the
/// snapshot's version on, whose place the snapshot notes. A commit publishes the events, then
/// the snapshot: JetStream has no transaction across streams, so a failing snapshot write is
/// reported and the events stay committed.
#[async_trait]
impl Backend for NatsDatabase {
    async fn load(
        &self,
        request: &LoadRequest<'_>,
        sink: &mut dyn LoadSink,
    ) -> Result<Loaded, EventStoreError> {
        let (id, ty, up_to) = (request.aggregate_id, request.aggregate_type, request.up_to);
        validate::aggregate_type(ty)?;
        let events = self.event_store();
        let subject = self.inner.names.subject(ty, id);
        if !request.through_snapshot {
            return replay(self, &subject, request, sink).await;
        }
        let snapshots = self.snapshot_store();
        let (found, head) = tokio::join!(
            within(request.snapshot_timeout, snapshots.find(id, ty, up_to)),
            events.head(&subject)
        );
        let head = head?;
        let (read, events_at) = match found {
            None => (SnapshotRead::TimedOut, None),
            Some(Ok(Some((snapshot, at)))) => (SnapshotRead::Found(snapshot), at),
            Some(Ok(None)) => (SnapshotRead::Missing, None),
            Some(Err(error)) => (SnapshotRead::Failed(error), None),
        };
        let version = match &read {
            SnapshotRead::Found(snapshot) => snapshot.version,
            _ => 0,
        };
        let from = if sink.snapshot(read) { version } else { 0 };
        let Some(head) = head else {
            return Ok(Loaded::new(0));
        };
        let last = up_to.map_or(head.version, |up_to| up_to.min(head.version));
        if from >= last {
            return Ok(Loaded::at_head(head.version, up_to));
        }
        let mut handed = None;
        let mut emit = |event: &snap_core::StoredEvent<'_>| {
            handed = Some(event.version);
            sink.event(event)
        };
        if head.first <= from + 1 {
            // The events after the snapshot are all in the last save, already read.
            let save = Save::parse(Some(&head.message.headers), &head.message.payload, id, ty)?;
            for event in save.events() {
                if event.version > from && event.version <= last && emit(&event).is_break() {
                    break;
                }
            }
        } else {
            tail(
                &events,
                (&subject, id, ty),
                (from, last),
                (events_at, &head),
                &mut emit,
            )
            .await?;
        }
        Ok(handed.map_or_else(|| Loaded::at_head(head.version, up_to), Loaded::new))
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
        let (version, sequence) = self
            .event_store()
            .append_save(&aggregate_id, &aggregate_type, expected_version, &events)
            .await?;
        let Some(snapshot) = snapshot else {
            return Ok(Committed::new(version, SnapshotWrite::NotAsked));
        };
        let write = async {
            validate::snapshot(&snapshot)?;
            // The save just made holds the snapshot's version when it is the commit's own.
            let at = sequence.filter(|_| snapshot.version == version);
            self.snapshot_store().save(&snapshot, at).await
        };
        let written = SnapshotWrite::after("nats", within(snapshot_timeout, write).await);
        Ok(Committed::new(version, written))
    }

    fn event_store(&self) -> Arc<DynEventStore> {
        Arc::new(NatsDatabase::event_store(self))
    }

    fn snapshot_store(&self) -> Option<Arc<DynSnapshotStore>> {
        Some(Arc::new(NatsDatabase::snapshot_store(self)))
    }

    fn name(&self) -> &'static str {
        "nats"
    }
}

/// Every event from version 1, up to the request's `up_to`.
async fn replay(
    database: &NatsDatabase,
    subject: &str,
    request: &LoadRequest<'_>,
    sink: &mut dyn LoadSink,
) -> Result<Loaded, EventStoreError> {
    let (id, ty) = (request.aggregate_id, request.aggregate_type);
    let last = request.up_to.unwrap_or(u64::MAX);
    let mut handed = 0;
    let mut emit = |event: &snap_core::StoredEvent<'_>| {
        handed = event.version;
        sink.event(event)
    };
    database
        .event_store()
        .read_events((subject, id, ty), (1, 0, last), &mut emit)
        .await?;
    Ok(Loaded::new(handed))
}

/// The events after `from` up to `last` (below the head's first version), read from the save
/// that holds `from` when the snapshot noted it, else from one located by search.
async fn tail(
    events: &crate::NatsEventStore,
    key: (&str, &snap_core::AggregateId, &str),
    (from, last): (u64, u64),
    (events_at, head): (Option<u64>, &Head),
    emit: &mut (dyn FnMut(&snap_core::StoredEvent<'_>) -> ControlFlow<()> + Send),
) -> Result<(), EventStoreError> {
    let start = match events_at {
        _ if from == 0 => 1,
        Some(at) if at < head.sequence => at,
        _ => events.start_after(key.0, from, head).await?,
    };
    if !events.read_events(key, (start, from, last), emit).await? {
        // The start was past the version asked for: read from the first message.
        events.read_events(key, (1, from, last), emit).await?;
    }
    Ok(())
}
