//! Events in a JetStream stream: one subject per aggregate, one message per save.

use std::ops::ControlFlow;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::{PublishMessage, StreamMessage};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;
use futures_util::StreamExt;
use snap_core::{
    AggregateId, BoxError, EventStore, EventStoreError, NewEvent, RecordedEvent, async_trait,
    validate,
};

use crate::wire::{self, COUNT, FIRST, RECORDED_AT, Save, Wire, range_of};
use crate::{NatsDatabase, read, token};

/// An [`EventStore`] on NATS JetStream.
///
/// Each aggregate's events are the messages of one subject, `<prefix>.events.<type>.<id>`
/// (type and id written as [tokens](crate#subjects-and-keys)). A save is one message that holds
/// all its events, so it is stored whole or not at all, and no reader ever sees part of it;
/// its size is bounded by the server's `max_payload` (1 MiB by default), and a larger save is
/// refused with [`InvalidInput::TooLong`](snap_core::InvalidInput::TooLong) before anything is sent. The server checks the
/// expected version: the message is published only if the subject's last message is still
/// the one the save was decided on. Clones share the connection.
#[derive(Debug, Clone)]
pub struct NatsEventStore {
    database: NatsDatabase,
}

/// A save's events as its message's payload, within the server's `max_payload`.
fn encode(events: &[NewEvent], max_payload: usize) -> Result<Bytes, EventStoreError> {
    let wire: Vec<Wire<'_>> = events.iter().map(Wire::of).collect();
    let payload = serde_json::to_vec(&wire).map_err(|e| nats_error(e, "encode a save"))?;
    wire::fits("events", payload.len(), max_payload)?;
    Ok(Bytes::from(payload))
}

/// The stream's head: its last save message, with the versions it holds.
pub(crate) struct Head {
    /// The last version.
    pub(crate) version: u64,
    /// The version of the save's first event.
    pub(crate) first: u64,
    /// The message's stream sequence.
    pub(crate) sequence: u64,
    /// The message.
    pub(crate) message: StreamMessage,
}

pub(crate) fn nats_error(error: impl Into<BoxError>, context: &'static str) -> EventStoreError {
    EventStoreError::from(crate::error::backend(error, context))
}

impl NatsEventStore {
    pub(crate) fn new(database: NatsDatabase) -> Self {
        Self { database }
    }

    /// The database this store writes to.
    pub fn database(&self) -> &NatsDatabase {
        &self.database
    }

    /// The stream's head, read from the stream's leader; `None` when it holds no event.
    pub(crate) async fn head(&self, subject: &str) -> Result<Option<Head>, EventStoreError> {
        match self
            .database
            .inner
            .events
            .get_last_raw_message_by_subject(subject)
            .await
        {
            Ok(message) => {
                let (first, version) = range_of(Some(&message.headers))
                    .map_err(|e| nats_error(e, "read the head of a stream"))?;
                let heads = &self.database.inner.heads;
                heads.note(subject, (version, message.sequence));
                Ok(Some(Head {
                    version,
                    first,
                    sequence: message.sequence,
                    message,
                }))
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(nats_error(e, "read the head of a stream")),
        }
    }

    /// The sequence of the first message of `subject` that holds a version above `after`, at
    /// or below `head`'s sequence: a binary search over the stream by gets from the stream's
    /// leader, so a read from a version never scans the aggregate's messages before it.
    pub(crate) async fn start_after(
        &self,
        subject: &str,
        after: u64,
        head: &Head,
    ) -> Result<u64, EventStoreError> {
        let events = &self.database.inner.events;
        let (mut low, mut high, mut found) = (1, head.sequence, head.sequence);
        while low <= high {
            let middle = low + (high - low) / 2;
            let Ok(message) = events
                .raw_message_builder()
                .sequence(middle)
                .next_by_subject(subject)
                .send()
                .await
            else {
                // Nothing at or after `middle`: look lower.
                high = middle.saturating_sub(1);
                continue;
            };
            if message.subject.as_str() != subject {
                // Not the answer asked for: start from the first message instead.
                return Ok(1);
            }
            let (_, last) =
                range_of(Some(&message.headers)).map_err(|e| nats_error(e, "locate a version"))?;
            if last > after {
                found = found.min(message.sequence);
                high = middle.saturating_sub(1);
            } else {
                low = message.sequence + 1;
            }
        }
        Ok(found)
    }

    /// The sequence of the save that holds `version`, if the stream holds it.
    pub(crate) async fn locate(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        version: u64,
    ) -> Result<Option<u64>, EventStoreError> {
        let subject = self
            .database
            .inner
            .names
            .subject(aggregate_type, aggregate_id);
        match self.head(&subject).await? {
            Some(head) if head.first <= version && version <= head.version => {
                Ok(Some(head.sequence))
            }
            Some(head) if version > 0 && version < head.first => self
                .start_after(&subject, version - 1, &head)
                .await
                .map(Some),
            _ => Ok(None),
        }
    }

    /// Reads the saves of `subject` from stream sequence `start`, handing `sink` each event
    /// with `from < version <= last`, in order. `Ok(false)`: the first save read from a
    /// located `start` (above 1) began after `from + 1`, and nothing was handed over.
    pub(crate) async fn read_events(
        &self,
        (subject, aggregate_id, aggregate_type): (&str, &AggregateId, &str),
        (start, from, last): (u64, u64, u64),
        sink: &mut (dyn FnMut(&snap_core::StoredEvent<'_>) -> ControlFlow<()> + Send),
    ) -> Result<bool, EventStoreError> {
        let mut first = true;
        let mut late = false;
        read::saves(&self.database, subject, start, &mut |message| {
            let (headers, payload) = (message.headers.as_ref(), &message.payload);
            let save = Save::parse(headers, payload, aggregate_id, aggregate_type)?;
            // A located start past `from + 1` (never a start at the first message: a gap
            // there is the stream's own, for the replay to report).
            if first && start > 1 && save.first > from + 1 {
                late = true;
                return Ok(ControlFlow::Break(()));
            }
            first = false;
            for event in save.events() {
                if event.version > last {
                    return Ok(ControlFlow::Break(()));
                }
                if event.version > from && sink(&event).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
                if event.version == last {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        })
        .await?;
        Ok(!late)
    }

    /// Appends one save; returns the stream's new version and the save's stream sequence
    /// (`None` for a save of no events).
    pub(crate) async fn append_save(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<(u64, Option<u64>), EventStoreError> {
        validate::append(aggregate_type, expected_version, events)?;
        let subject = self
            .database
            .inner
            .names
            .subject(aggregate_type, aggregate_id);
        let conflict = |actual| EventStoreError::Concurrency {
            aggregate_id: aggregate_id.clone(),
            aggregate_type: aggregate_type.to_owned(),
            expected: expected_version,
            actual,
        };
        let heads = &self.database.inner.heads;
        // The head a load or the last save saw, if it is the expected one: the server checks
        // it, and a stale one costs one more read. A save of nothing always reads it.
        let mut guess = heads
            .get(&subject)
            .filter(|(version, _)| *version == expected_version && !events.is_empty());
        let payload = encode(events, self.database.max_payload())?;
        let count = events.len() as u64;
        // A stream whose head keeps the expected version moves only by this save: the second
        // try, on the head just read, is the last.
        for _ in 0..2 {
            let (version, sequence) = if let Some(head) = guess.take() {
                head
            } else {
                let head = self.head(&subject).await?;
                head.as_ref().map_or((0, 0), |h| (h.version, h.sequence))
            };
            if version != expected_version {
                return Err(conflict(version));
            }
            let Some(first_id) = events.first().map(|e| e.event_id) else {
                return Ok((version, None));
            };
            let recorded_at = snap_core::now().unix_timestamp_nanos() / 1_000;
            let publish = PublishMessage::build()
                .payload(payload.clone())
                .header(FIRST, (expected_version + 1).to_string().as_str())
                .header(COUNT, count.to_string().as_str())
                .header(RECORDED_AT, recorded_at.to_string().as_str())
                // A retry after a lost acknowledgement is recognised by the server and
                // stored once.
                .message_id(first_id.to_string())
                .expected_last_subject_sequence(sequence);
            let sent = self
                .database
                .inner
                .context
                .send_publish(subject.clone(), publish)
                .await;
            let acked = match sent {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match acked {
                Ok(ack) => {
                    heads.note(&subject, (expected_version + count, ack.sequence));
                    return Ok((expected_version + count, Some(ack.sequence)));
                }
                // The stream moved: read its head, which decides.
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    heads.forget(&subject);
                }
                Err(e) => return Err(nats_error(e, "append")),
            }
        }
        let head = self.head(&subject).await?;
        Err(conflict(head.map_or(0, |h| h.version)))
    }
}

#[async_trait]
impl EventStore for NatsEventStore {
    async fn append(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<u64, EventStoreError> {
        self.append_save(aggregate_id, aggregate_type, expected_version, &events)
            .await
            .map(|(version, _)| version)
    }

    async fn load(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        from_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        snap_core::collect_batches(self, aggregate_id, aggregate_type, from_version, to_version)
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
        validate::aggregate_type(aggregate_type)?;
        let subject = self
            .database
            .inner
            .names
            .subject(aggregate_type, aggregate_id);
        let Some(head) = self.head(&subject).await? else {
            return Ok(());
        };
        let last = to_version.map_or(head.version, |to| to.min(head.version));
        if from_version >= last {
            return Ok(());
        }
        let start = if from_version == 0 {
            1
        } else {
            self.start_after(&subject, from_version, &head).await?
        };
        let (mut failed, mut stopped) = (None, false);
        let mut batch = Vec::new();
        let mut emit = |event: &snap_core::StoredEvent<'_>| {
            match wire::recorded(event, aggregate_id, aggregate_type) {
                Ok(event) => batch.push(event),
                Err(error) => {
                    failed = Some(error);
                    return ControlFlow::Break(());
                }
            }
            if batch.len() < 256 {
                return ControlFlow::Continue(());
            }
            let flow = sink(std::mem::take(&mut batch));
            stopped = flow.is_break();
            flow
        };
        let key = (subject.as_str(), aggregate_id, aggregate_type);
        let mut whole = self
            .read_events(key, (start, from_version, last), &mut emit)
            .await?;
        if !whole {
            // The located start was past the version asked for: read from the first message.
            whole = self
                .read_events(key, (1, from_version, last), &mut emit)
                .await?;
        }
        debug_assert!(whole, "a read from the first message is never late");
        if let Some(error) = failed {
            return Err(error);
        }
        if !stopped && !batch.is_empty() {
            let _ = sink(batch);
        }
        Ok(())
    }

    async fn current_version(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<u64, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        let subject = self
            .database
            .inner
            .names
            .subject(aggregate_type, aggregate_id);
        Ok(self.head(&subject).await?.map_or(0, |h| h.version))
    }

    async fn list_aggregate_ids(
        &self,
        aggregate_type: &str,
        after: Option<&AggregateId>,
        limit: usize,
    ) -> Result<Vec<AggregateId>, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let filter = self.database.inner.names.type_subjects(aggregate_type);
        let mut subjects = self
            .database
            .inner
            .events
            .info_with_subjects(&filter)
            .await
            .map_err(|e| nats_error(e, "list the streams of a type"))?;
        let mut ids = Vec::new();
        while let Some(entry) = subjects.next().await {
            let (subject, _) = entry.map_err(|e| nats_error(e, "list the streams of a type"))?;
            let text = subject
                .rsplit('.')
                .next()
                .and_then(token::decode)
                .ok_or_else(|| {
                    nats_error(format!("subject {subject:?}"), "decode a stream's id")
                })?;
            let id = AggregateId::parse_stored("nats", text)?;
            if after.is_none_or(|a| id > *a) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        ids.truncate(limit);
        Ok(ids)
    }
}
