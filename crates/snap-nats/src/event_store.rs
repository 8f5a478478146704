//! Events in a JetStream stream: one subject per aggregate, one message per save.

use std::ops::ControlFlow;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use snap_core::{
    AggregateId, BoxError, EventStore, EventStoreError, InvalidInput, NewEvent, RecordedEvent,
    async_trait, validate,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::NatsDatabase;
use crate::token;

/// The version of a save's first event.
const FIRST: &str = "Snap-First";
/// How many events a save holds.
const COUNT: &str = "Snap-Count";
/// When the save was made, in microseconds since the Unix epoch (UTC).
const RECORDED_AT: &str = "Snap-Recorded-At";
/// Room kept for the headers within the server's `max_payload`.
const HEADER_ROOM: usize = 512;

/// An [`EventStore`] on NATS JetStream.
///
/// Each aggregate's events are the messages of one subject, `<prefix>.events.<type>.<id>`
/// (type and id written as [tokens](crate#subjects-and-keys)). A save is one message that holds
/// all its events, so it is stored whole or not at all, and no reader ever sees part of it;
/// its size is bounded by the server's `max_payload` (1 MiB by default), and a larger save is
/// refused with [`InvalidInput::TooLong`] before anything is sent. The server checks the
/// expected version: the message is published only if the subject's last message is still
/// the one the save was decided on. Clones share the connection.
#[derive(Debug, Clone)]
pub struct NatsEventStore {
    database: NatsDatabase,
}

/// One event as a save's message holds it.
#[derive(Serialize, Deserialize)]
struct Wire {
    id: Uuid,
    #[serde(rename = "type")]
    event_type: String,
    payload: Value,
    metadata: Value,
}

/// The stream's head: the last version and the sequence of the message that holds it.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    version: u64,
    sequence: u64,
}

fn nats_error(error: impl Into<BoxError>, context: &'static str) -> EventStoreError {
    EventStoreError::from(crate::error::backend(error, context))
}

fn header_u64(headers: Option<&HeaderMap>, name: &str) -> Result<u64, BoxError> {
    let value = headers
        .and_then(|h| h.get(name))
        .ok_or_else(|| format!("a save message without its {name} header"))?;
    Ok(value.as_str().parse()?)
}

/// The first version and the count of a save message.
fn range_of(headers: Option<&HeaderMap>) -> Result<(u64, u64), BoxError> {
    Ok((header_u64(headers, FIRST)?, header_u64(headers, COUNT)?))
}

impl NatsEventStore {
    pub(crate) fn new(database: NatsDatabase) -> Self {
        Self { database }
    }

    /// The database this store writes to.
    pub fn database(&self) -> &NatsDatabase {
        &self.database
    }

    /// The stream's head, read from the stream's leader.
    async fn head(&self, subject: &str) -> Result<Head, EventStoreError> {
        match self
            .database
            .inner
            .events
            .get_last_raw_message_by_subject(subject)
            .await
        {
            Ok(message) => {
                let (first, count) = range_of(Some(&message.headers))
                    .map_err(|e| nats_error(e, "read the head of a stream"))?;
                Ok(Head {
                    version: first + count - 1,
                    sequence: message.sequence,
                })
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(Head::default()),
            Err(e) => Err(nats_error(e, "read the head of a stream")),
        }
    }

    /// The sequence of the first message of `subject` that holds a version above `after`, at
    /// or below `head`'s sequence: a binary search over the stream by gets from the stream's
    /// leader, so a read from a version never scans the aggregate's messages before it.
    async fn start_after(
        &self,
        subject: &str,
        after: u64,
        head: Head,
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
            let (first, count) =
                range_of(Some(&message.headers)).map_err(|e| nats_error(e, "locate a version"))?;
            if first + count - 1 > after {
                found = found.min(message.sequence);
                high = middle.saturating_sub(1);
            } else {
                low = message.sequence + 1;
            }
        }
        Ok(found)
    }

    /// Reads the saves of one aggregate from `start`, in order, up to the one that holds
    /// `last`, handing each event with `from < version <= last` to `emit` in batches of one
    /// save. `Ok(false)`: the first save read from a located `start` (above 1) began after
    /// `from + 1`, and nothing was handed over.
    async fn read(
        &self,
        (subject, aggregate_id, aggregate_type): (&str, &AggregateId, &str),
        (start, from, last): (u64, u64, u64),
        sink: &mut (dyn FnMut(Vec<RecordedEvent>) -> ControlFlow<()> + Send),
    ) -> Result<bool, EventStoreError> {
        let consumer = self
            .database
            .inner
            .events
            .create_consumer(OrderedConfig {
                filter_subject: subject.to_owned(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| nats_error(e, "open a read of a stream"))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| nats_error(e, "read a stream"))?;
        let mut first = true;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| nats_error(e, "read a stream"))?;
            let events = decode(&message.message, aggregate_id, aggregate_type)?;
            let (Some(begin), Some(end)) = (
                events.first().map(|e| e.version),
                events.last().map(|e| e.version),
            ) else {
                continue;
            };
            // A located start past `from + 1` (never a start at the first message: a gap
            // there is the stream's own, for the replay to report).
            if first && start > 1 && begin > from + 1 {
                return Ok(false);
            }
            first = false;
            let batch: Vec<RecordedEvent> = events
                .into_iter()
                .filter(|e| e.version > from && e.version <= last)
                .collect();
            if !batch.is_empty() && sink(batch).is_break() {
                return Ok(true);
            }
            if end >= last {
                return Ok(true);
            }
        }
        Err(nats_error(
            "the read ended before the head it was asked for",
            "read a stream",
        ))
    }
}

/// The events of one save message.
fn decode(
    message: &async_nats::Message,
    aggregate_id: &AggregateId,
    aggregate_type: &str,
) -> Result<Vec<RecordedEvent>, EventStoreError> {
    let headers = message.headers.as_ref();
    let (first, count) = range_of(headers).map_err(|source| EventStoreError::Deserialization {
        aggregate_id: aggregate_id.clone(),
        aggregate_type: aggregate_type.to_owned(),
        version: 0,
        source,
    })?;
    let decoded = (|| -> Result<Vec<RecordedEvent>, BoxError> {
        let micros = i128::from(header_u64(headers, RECORDED_AT)?);
        let recorded_at = OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000)?;
        let wire: Vec<Wire> = serde_json::from_slice(&message.payload)?;
        if wire.len() as u64 != count {
            return Err(format!("a save of {count} events holds {}", wire.len()).into());
        }
        Ok(wire
            .into_iter()
            .zip(first..)
            .map(|(event, version)| {
                let new = NewEvent::new(event.event_type, event.payload)
                    .with_metadata(event.metadata)
                    .with_event_id(event.id);
                RecordedEvent::new(aggregate_id, aggregate_type, version, new, recorded_at)
            })
            .collect())
    })();
    decoded.map_err(|source| EventStoreError::Deserialization {
        aggregate_id: aggregate_id.clone(),
        aggregate_type: aggregate_type.to_owned(),
        version: first,
        source,
    })
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
        validate::append(aggregate_type, expected_version, &events)?;
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
        let head = self.head(&subject).await?;
        if head.version != expected_version {
            return Err(conflict(head.version));
        }
        let Some(first_id) = events.first().map(|e| e.event_id) else {
            return Ok(head.version);
        };
        let count = events.len() as u64;
        let wire: Vec<Wire> = events
            .into_iter()
            .map(|e| Wire {
                id: e.event_id,
                event_type: e.event_type,
                payload: e.payload,
                metadata: e.metadata,
            })
            .collect();
        let payload = serde_json::to_vec(&wire).map_err(|e| nats_error(e, "encode a save"))?;
        let max = self.database.max_payload().saturating_sub(HEADER_ROOM);
        if payload.len() > max {
            return Err(InvalidInput::TooLong {
                field: "events",
                len: payload.len(),
                max,
            }
            .into());
        }
        let recorded_at = snap_core::now().unix_timestamp_nanos() / 1_000;
        let publish = PublishMessage::build()
            .payload(Bytes::from(payload))
            .header(FIRST, (expected_version + 1).to_string().as_str())
            .header(COUNT, count.to_string().as_str())
            .header(RECORDED_AT, recorded_at.to_string().as_str())
            // A retry after a lost acknowledgement is recognised by the server and stored once.
            .message_id(first_id.to_string())
            .expected_last_subject_sequence(head.sequence);
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
            Ok(_) => Ok(expected_version + count),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                Err(conflict(self.head(&subject).await?.version))
            }
            Err(e) => Err(nats_error(e, "append")),
        }
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
        let head = self.head(&subject).await?;
        let last = to_version.map_or(head.version, |to| to.min(head.version));
        if from_version >= last {
            return Ok(());
        }
        let start = if from_version == 0 {
            1
        } else {
            self.start_after(&subject, from_version, head).await?
        };
        let key = (subject.as_str(), aggregate_id, aggregate_type);
        if self.read(key, (start, from_version, last), sink).await? || start == 1 {
            return Ok(());
        }
        // The located start was past the version asked for: read from the first message.
        self.read(key, (1, from_version, last), sink)
            .await
            .map(|_| ())
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
        Ok(self.head(&subject).await?.version)
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
