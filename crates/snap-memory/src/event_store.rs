use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use snap_core::{
    AggregateId, EventStore, EventStoreError, NewEvent, RecordedEvent, async_trait, now, validate,
};

/// Aggregate type -> aggregate id -> events; the event at index `i` has version `i + 1`.
pub(crate) type Streams = HashMap<String, HashMap<AggregateId, Vec<RecordedEvent>>>;

/// Appends checked `events` to a stream that must be at `expected_version`, under the lock.
pub(crate) fn append_to(
    streams: &mut Streams,
    aggregate_id: &AggregateId,
    aggregate_type: &str,
    expected_version: u64,
    events: Vec<NewEvent>,
) -> Result<u64, EventStoreError> {
    // Taken under the lock so timestamps follow the order appends commit in.
    let recorded_at = now();
    let current = streams
        .get(aggregate_type)
        .and_then(|ids| ids.get(aggregate_id))
        .map_or(0, |stream| stream.len() as u64);
    if current != expected_version {
        return Err(EventStoreError::Concurrency {
            aggregate_id: aggregate_id.clone(),
            aggregate_type: aggregate_type.to_owned(),
            expected: expected_version,
            actual: current,
        });
    }
    if events.is_empty() {
        return Ok(current);
    }
    let stream = streams
        .entry(aggregate_type.to_owned())
        .or_default()
        .entry(aggregate_id.clone())
        .or_default();
    stream.extend(
        events
            .into_iter()
            .zip(current + 1..)
            .map(|(event, version)| {
                RecordedEvent::new(aggregate_id, aggregate_type, version, event, recorded_at)
            }),
    );
    Ok(stream.len() as u64)
}

/// An [`EventStore`] in process memory with optimistic concurrency. Clones share the same
/// streams.
#[derive(Clone, Default)]
pub struct InMemoryEventStore {
    streams: Arc<Mutex<Streams>>,
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events are stored across all streams.
    pub fn event_count(&self) -> usize {
        self.lock()
            .values()
            .flat_map(HashMap::values)
            .map(Vec::len)
            .sum()
    }

    /// Removes every event.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// See `InMemorySnapshotStore::lock`: no critical section can leave a stream half-written.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for InMemoryEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryEventStore")
            .field("events", &self.event_count())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<u64, EventStoreError> {
        validate::append(aggregate_type, expected_version, &events)?;
        append_to(
            &mut self.lock(),
            aggregate_id,
            aggregate_type,
            expected_version,
            events,
        )
    }

    async fn load(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        from_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        let streams = self.lock();
        let Some(stream) = streams
            .get(aggregate_type)
            .and_then(|ids| ids.get(aggregate_id))
        else {
            return Ok(Vec::new());
        };
        // Versions are 1-based and dense, so version v sits at index v - 1.
        let start = usize::try_from(from_version)
            .unwrap_or(usize::MAX)
            .min(stream.len());
        let end = to_version
            .map_or(stream.len(), |to| usize::try_from(to).unwrap_or(usize::MAX))
            .min(stream.len());
        Ok(stream
            .get(start..end.max(start))
            .map(<[RecordedEvent]>::to_vec)
            .unwrap_or_default())
    }

    async fn current_version(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<u64, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        Ok(self
            .lock()
            .get(aggregate_type)
            .and_then(|ids| ids.get(aggregate_id))
            .map_or(0, |stream| stream.len() as u64))
    }

    async fn list_aggregate_ids(
        &self,
        aggregate_type: &str,
        after: Option<&AggregateId>,
        limit: usize,
    ) -> Result<Vec<AggregateId>, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        let mut ids: Vec<AggregateId> = self
            .lock()
            .get(aggregate_type)
            .map(|streams| {
                streams
                    .iter()
                    .filter(|(id, stream)| !stream.is_empty() && after.is_none_or(|a| *id > a))
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();
        ids.truncate(limit);
        Ok(ids)
    }
}
