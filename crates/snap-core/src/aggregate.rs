//! The aggregate model: what a user implements ([`Aggregate`]) and the handle that tracks its
//! id, version and uncommitted events ([`AggregateRoot`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::backend::StoredEvent;
use crate::codec::StateCodec;
use crate::error::{BoxError, ReplayError};
use crate::event::{NewEvent, RecordedEvent};
use crate::id::AggregateId;
use crate::snapshot::Snapshot;

/// An event-sourced aggregate: a state built by applying events in order.
///
/// `apply` must be deterministic and infallible: the state after events `1..=n` must be the same
/// whether it is rebuilt by replay or restored from a snapshot at `k` plus events `k+1..=n`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use snap_core::Aggregate;
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Counter { value: i64 }
///
/// #[derive(Clone, Serialize, Deserialize)]
/// enum CounterEvent { Added(i64) }
///
/// impl Aggregate for Counter {
///     const TYPE: &'static str = "Counter";
///     type Event = CounterEvent;
///     fn apply(&mut self, event: &CounterEvent) {
///         match event { CounterEvent::Added(n) => self.value += n }
///     }
/// }
/// ```
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The aggregate type name stored with events and snapshots, e.g. `"Account"`.
    const TYPE: &'static str;
    /// The version of the serialised state's shape. Bump it when that shape changes, so old
    /// snapshots are migrated or ignored instead of misread.
    const SCHEMA_VERSION: u32 = 1;
    /// The events this aggregate applies.
    type Event: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// Applies one event to the state.
    fn apply(&mut self, event: &Self::Event);

    /// Whether the aggregate was deleted; a discarded aggregate loads as "not found".
    fn is_discarded(&self) -> bool {
        false
    }
}

/// Why an [`AggregateRoot`] could not be turned into a [`Snapshot`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The root has recorded events that were not committed yet; a snapshot reflects committed
    /// state only.
    #[error("{count} uncommitted events: save the aggregate before snapshotting it")]
    Uncommitted {
        /// How many events are pending.
        count: usize,
    },
    /// The aggregate has no events, so there is nothing a snapshot could shortcut.
    #[error("the aggregate has no committed events")]
    NoEvents,
    /// The state did not serialise to a JSON object.
    #[error("the aggregate state must serialise to a JSON object")]
    NotAnObject,
    /// Serialisation failed.
    #[error("the aggregate state could not be serialised")]
    Serialize(#[source] serde_json::Error),
    /// A [`StateCodec`](crate::StateCodec) of the application's could not encode the state.
    #[error("the state codec could not encode the aggregate state")]
    Encode(#[source] crate::BoxError),
    /// An uncommitted event cannot be stored, so the state it leads to is never committed.
    #[error("an uncommitted event cannot be stored")]
    Unencodable(#[source] EncodeError),
}

/// Why the uncommitted events of an [`AggregateRoot`] cannot be appended. Nothing is written
/// when a save meets it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The event did not serialise.
    #[error("uncommitted event {index} could not be serialised")]
    Serialize {
        /// Its place among the uncommitted events, from 0.
        index: usize,
        /// The serde error.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// The event serialised, but its JSON does not deserialise back into the event type
    /// (a non-finite float becomes `null`, an asymmetric serde impl): a stored copy could never
    /// be replayed, so it is not stored.
    #[error(
        "uncommitted event {index} does not read back from its own JSON; it could never be replayed"
    )]
    NotReplayable {
        /// Its place among the uncommitted events, from 0.
        index: usize,
        /// The serde error of reading it back.
        #[source]
        source: Arc<serde_json::Error>,
    },
}

/// An aggregate instance: its id, its committed version, its state and the events recorded
/// since the last save.
pub struct AggregateRoot<A: Aggregate> {
    id: AggregateId,
    version: u64,
    state: A,
    uncommitted: Vec<A::Event>,
    /// The uncommitted events as they will be appended, encoded once by `record`.
    encoded: Vec<NewEvent>,
    /// The first uncommitted event that cannot be appended, if any.
    unencodable: Option<EncodeError>,
    snapshot_version: u64,
    last_replay: Option<(u64, Duration)>,
}

/// Serialises an event and reads it back: the form a store keeps and the event a replay of
/// that form applies.
fn encode<A: Aggregate>(
    event: &A::Event,
    index: usize,
) -> Result<(NewEvent, A::Event), EncodeError> {
    let new = NewEvent::from_event(event).map_err(|e| EncodeError::Serialize {
        index,
        source: Arc::new(e),
    })?;
    let decoded = A::Event::deserialize(&new.payload).map_err(|e| EncodeError::NotReplayable {
        index,
        source: Arc::new(e),
    })?;
    Ok((new, decoded))
}

impl<A: Aggregate> AggregateRoot<A> {
    /// A new aggregate at version 0 with the default state.
    pub fn new(id: impl Into<AggregateId>) -> Self {
        Self::restore(id, 0, A::default())
    }

    /// An aggregate rebuilt at `version` with `state` and nothing uncommitted.
    pub fn restore(id: impl Into<AggregateId>, version: u64, state: A) -> Self {
        Self {
            id: id.into(),
            version,
            state,
            uncommitted: Vec::new(),
            encoded: Vec::new(),
            unencodable: None,
            snapshot_version: 0,
            last_replay: None,
        }
    }

    /// Restores the aggregate from a snapshot's state. The caller checks the schema version
    /// first (the repository migrates or falls back to replay).
    pub fn from_snapshot(snapshot: &Snapshot) -> Result<Self, ReplayError> {
        let fail = |source: BoxError| ReplayError::Snapshot {
            aggregate_id: snapshot.aggregate_id.clone(),
            aggregate_type: A::TYPE.to_owned(),
            snapshot: snapshot.to_string(),
            source,
        };
        if snapshot.aggregate_type != A::TYPE {
            return Err(fail(
                format!("it belongs to type {:?}", snapshot.aggregate_type).into(),
            ));
        }
        let state = A::deserialize(&snapshot.state).map_err(|e| fail(e.into()))?;
        let mut root = Self::restore(snapshot.aggregate_id.clone(), snapshot.version, state);
        root.snapshot_version = snapshot.version;
        Ok(root)
    }

    /// The version of the latest snapshot this handle knows of: the one it was restored from,
    /// or the last one written or scheduled for it since; 0 if none. Strategies use it to
    /// count the events a load would replay.
    pub fn snapshot_version(&self) -> u64 {
        self.snapshot_version
    }

    /// Records that a snapshot at `version` was written or scheduled for this aggregate.
    pub fn note_snapshot(&mut self, version: u64) {
        self.snapshot_version = self.snapshot_version.max(version);
    }

    /// What the load that produced this handle spent replaying: events applied and time.
    pub fn last_replay(&self) -> Option<(u64, Duration)> {
        self.last_replay
    }

    /// Records what the load that produced this handle spent replaying.
    pub fn note_replay(&mut self, events: u64, duration: Duration) {
        self.last_replay = Some((events, duration));
    }

    /// The aggregate's id.
    pub fn id(&self) -> &AggregateId {
        &self.id
    }

    /// The committed version: the number of stored events this state reflects.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version after the uncommitted events are saved.
    pub fn pending_version(&self) -> u64 {
        self.version.saturating_add(self.uncommitted.len() as u64)
    }

    /// The current state, uncommitted events included.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Consumes the root, returning its state.
    pub fn into_state(self) -> A {
        self.state
    }

    /// Applies a new event and queues it for the next save.
    ///
    /// The event is applied as the store will keep it: it is serialised here, once (the JSON
    /// the next save appends), read back, and the read-back event is what `apply` sees. For an
    /// event whose serde round trip is exact that is the event itself. For one whose round
    /// trip loses something (a `#[serde(skip)]` field, a custom impl), the state is the one
    /// every later load replays, so a snapshot of it never holds a state that no replay gives.
    /// An event that does not serialise, or does not read back at all, is applied as given
    /// and makes the next save fail with [`EncodeError`] before anything is written.
    pub fn record(&mut self, event: A::Event) {
        match encode::<A>(&event, self.uncommitted.len()) {
            Ok((new, decoded)) => {
                self.state.apply(&decoded);
                self.encoded.push(new);
            }
            Err(error) => {
                self.state.apply(&event);
                self.unencodable.get_or_insert(error);
            }
        }
        self.uncommitted.push(event);
    }

    /// The events recorded since the last save.
    pub fn uncommitted(&self) -> &[A::Event] {
        &self.uncommitted
    }

    /// The uncommitted events as [`EventStore::append`](crate::EventStore::append) takes them,
    /// encoded when they were recorded (so their ids stay the same from one save attempt to
    /// the next), or why one of them cannot be stored.
    pub fn uncommitted_as_new_events(&self) -> Result<Vec<NewEvent>, EncodeError> {
        self.new_events().map(<[NewEvent]>::to_vec)
    }

    /// The uncommitted events as a commit takes them, borrowed: what
    /// [`uncommitted_as_new_events`](Self::uncommitted_as_new_events) gives, without a copy.
    pub fn new_events(&self) -> Result<&[NewEvent], EncodeError> {
        match &self.unencodable {
            Some(error) => Err(error.clone()),
            None => Ok(&self.encoded),
        }
    }

    /// Marks the uncommitted events as stored: the version advances past them.
    pub fn mark_committed(&mut self) {
        self.version = self.pending_version();
        self.uncommitted.clear();
        self.encoded.clear();
        self.unencodable = None;
    }

    /// Applies a stored event during a load. Its version must be exactly the next one and it
    /// must belong to this aggregate, so a gap in the stream is an error, never a wrong state.
    /// A root with uncommitted events refuses stored events: they would apply out of order.
    pub fn apply_recorded(&mut self, event: &RecordedEvent) -> Result<(), ReplayError> {
        if !self.uncommitted.is_empty() {
            return Err(ReplayError::Uncommitted {
                aggregate_id: self.id.clone(),
                aggregate_type: A::TYPE.to_owned(),
                count: self.uncommitted.len(),
            });
        }
        if event.aggregate_id != self.id || event.aggregate_type != A::TYPE {
            return Err(ReplayError::WrongStream {
                aggregate_id: self.id.clone(),
                aggregate_type: A::TYPE.to_owned(),
                found_id: event.aggregate_id.clone(),
                found_type: event.aggregate_type.clone(),
                version: event.version,
            });
        }
        self.apply_stored(&StoredEvent::of(event))
    }

    /// Applies an event a [`Backend`](crate::Backend) load handed over, decoding its payload
    /// straight into the event type. Its version must be exactly the next one, so a gap in the
    /// stream is an error, never a wrong state; the backend answers for the stream it read.
    pub fn apply_stored(&mut self, event: &StoredEvent<'_>) -> Result<(), ReplayError> {
        if !self.uncommitted.is_empty() {
            return Err(ReplayError::Uncommitted {
                aggregate_id: self.id.clone(),
                aggregate_type: A::TYPE.to_owned(),
                count: self.uncommitted.len(),
            });
        }
        let expected = self.version.saturating_add(1);
        if event.version != expected || self.version == u64::MAX {
            return Err(ReplayError::VersionGap {
                aggregate_id: self.id.clone(),
                aggregate_type: A::TYPE.to_owned(),
                expected,
                found: event.version,
            });
        }
        let typed: A::Event = event
            .payload
            .decode()
            .map_err(|source| ReplayError::Event {
                aggregate_id: self.id.clone(),
                aggregate_type: A::TYPE.to_owned(),
                version: event.version,
                source,
            })?;
        self.state.apply(&typed);
        self.version = event.version;
        Ok(())
    }

    /// Takes a snapshot of the committed state at the current version, stamped with
    /// [`Aggregate::SCHEMA_VERSION`].
    pub fn to_snapshot(&self) -> Result<Snapshot, CaptureError> {
        self.to_snapshot_with(&crate::SerdeCodec)
    }

    /// [`to_snapshot`](Self::to_snapshot) with the state encoded by `codec`.
    pub fn to_snapshot_with(&self, codec: &dyn StateCodec<A>) -> Result<Snapshot, CaptureError> {
        if !self.uncommitted.is_empty() {
            return Err(CaptureError::Uncommitted {
                count: self.uncommitted.len(),
            });
        }
        self.capture(self.version, codec)
    }

    /// The snapshot of the state once the uncommitted events are saved: the current state (it
    /// includes them) at [`pending_version`](Self::pending_version), to store in the same
    /// transaction as those events.
    pub fn to_snapshot_after_save(&self) -> Result<Snapshot, CaptureError> {
        self.to_snapshot_after_save_with(&crate::SerdeCodec)
    }

    /// [`to_snapshot_after_save`](Self::to_snapshot_after_save) with the state encoded by
    /// `codec`.
    pub fn to_snapshot_after_save_with(
        &self,
        codec: &dyn StateCodec<A>,
    ) -> Result<Snapshot, CaptureError> {
        if let Some(error) = &self.unencodable {
            return Err(CaptureError::Unencodable(error.clone()));
        }
        self.capture(self.pending_version(), codec)
    }

    fn capture(&self, version: u64, codec: &dyn StateCodec<A>) -> Result<Snapshot, CaptureError> {
        if version == 0 {
            return Err(CaptureError::NoEvents);
        }
        let state = codec.encode(&self.state).map_err(|error| {
            match error.downcast::<serde_json::Error>() {
                Ok(serde) => CaptureError::Serialize(*serde),
                Err(other) => CaptureError::Encode(other),
            }
        })?;
        if !state.is_object() {
            return Err(CaptureError::NotAnObject);
        }
        Ok(Snapshot::new(
            self.id.clone(),
            A::TYPE,
            version,
            state,
            A::SCHEMA_VERSION,
        ))
    }
}

impl<A: Aggregate + Clone> Clone for AggregateRoot<A> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            version: self.version,
            state: self.state.clone(),
            uncommitted: self.uncommitted.clone(),
            encoded: self.encoded.clone(),
            unencodable: self.unencodable.clone(),
            snapshot_version: self.snapshot_version,
            last_replay: self.last_replay,
        }
    }
}

impl<A: Aggregate> fmt::Debug for AggregateRoot<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateRoot")
            .field("type", &A::TYPE)
            .field("id", &self.id)
            .field("version", &self.version)
            .field("uncommitted", &self.uncommitted.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    #[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Counter {
        value: i64,
    }

    #[derive(Clone, Serialize, Deserialize)]
    enum CounterEvent {
        Added(i64),
    }

    impl Aggregate for Counter {
        const TYPE: &'static str = "Counter";
        type Event = CounterEvent;
        fn apply(&mut self, CounterEvent::Added(n): &CounterEvent) {
            self.value += n;
        }
    }

    fn recorded(id: Uuid, version: u64, n: i64) -> RecordedEvent {
        RecordedEvent {
            event_id: Uuid::new_v4(),
            aggregate_id: id.into(),
            aggregate_type: "Counter".into(),
            version,
            event_type: "Added".into(),
            payload: json!({"Added": n}),
            metadata: json!(null),
            recorded_at: crate::now(),
        }
    }

    #[test]
    fn record_commit_snapshot_restore() {
        let id = Uuid::new_v4();
        let mut root = AggregateRoot::<Counter>::new(id);
        root.record(CounterEvent::Added(2));
        root.record(CounterEvent::Added(3));
        assert_eq!(root.pending_version(), 2);
        assert!(matches!(
            root.to_snapshot(),
            Err(CaptureError::Uncommitted { count: 2 })
        ));
        let events = root.uncommitted_as_new_events().unwrap();
        assert_eq!(events[0].event_type, "Added");
        root.mark_committed();
        let snapshot = root.to_snapshot().unwrap();
        assert_eq!(
            (snapshot.version, snapshot.state.clone()),
            (2, json!({"value": 5}))
        );
        let back = AggregateRoot::<Counter>::from_snapshot(&snapshot).unwrap();
        assert_eq!((back.version(), back.state()), (2, &Counter { value: 5 }));
    }

    #[test]
    fn replay_refuses_gaps_and_foreign_events() {
        let id = Uuid::new_v4();
        let mut root = AggregateRoot::<Counter>::new(id);
        root.apply_recorded(&recorded(id, 1, 4)).unwrap();
        assert!(matches!(
            root.apply_recorded(&recorded(id, 3, 1)),
            Err(ReplayError::VersionGap {
                expected: 2,
                found: 3,
                ..
            })
        ));
        assert!(matches!(
            root.apply_recorded(&recorded(Uuid::new_v4(), 2, 1)),
            Err(ReplayError::WrongStream { .. })
        ));
        assert_eq!((root.version(), root.state().value), (1, 4));
        root.record(CounterEvent::Added(1));
        assert!(matches!(
            root.apply_recorded(&recorded(id, 2, 1)),
            Err(ReplayError::Uncommitted { count: 1, .. })
        ));
    }

    #[test]
    fn empty_root_has_nothing_to_snapshot() {
        let root = AggregateRoot::<Counter>::new(Uuid::new_v4());
        assert!(matches!(root.to_snapshot(), Err(CaptureError::NoEvents)));
    }
}
