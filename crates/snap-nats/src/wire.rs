//! How a save is written as one message: its events as a JSON array, its range and time in
//! headers.

use std::borrow::Cow;

use async_nats::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use snap_core::{
    AggregateId, BoxError, EventStoreError, InvalidInput, NewEvent, Payload, RecordedEvent,
    StoredEvent,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// The version of a save's first event.
pub(crate) const FIRST: &str = "Snap-First";
/// How many events a save holds.
pub(crate) const COUNT: &str = "Snap-Count";
/// When the save was made, in microseconds since the Unix epoch (UTC).
pub(crate) const RECORDED_AT: &str = "Snap-Recorded-At";
/// On a snapshot message: the events stream's sequence of the save that holds the snapshot's
/// version, where a load through it starts reading.
pub(crate) const EVENT_SEQUENCE: &str = "Snap-Event-Sequence";
/// Room kept for the headers within the server's `max_payload`.
const HEADER_ROOM: usize = 512;

/// Refuses a message payload of `len` bytes that would not fit in the server's `max_payload`
/// with its headers: the typed error for `field`, before anything is sent.
pub(crate) fn fits(
    field: &'static str,
    len: usize,
    max_payload: usize,
) -> Result<(), InvalidInput> {
    let max = max_payload.saturating_sub(HEADER_ROOM);
    if len > max {
        return Err(InvalidInput::TooLong { field, len, max });
    }
    Ok(())
}

/// One event as a save's message holds it.
#[derive(Serialize)]
pub(crate) struct Wire<'a> {
    id: Uuid,
    #[serde(rename = "type")]
    event_type: &'a str,
    payload: &'a Value,
    metadata: &'a Value,
}

impl<'a> Wire<'a> {
    /// An event to append, as the message holds it.
    pub(crate) fn of(event: &'a NewEvent) -> Self {
        Self {
            id: event.event_id,
            event_type: &event.event_type,
            payload: &event.payload,
            metadata: &event.metadata,
        }
    }
}

/// One event read back, borrowed from the message.
#[derive(Deserialize)]
struct WireRef<'a> {
    id: Uuid,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(borrow)]
    metadata: &'a RawValue,
}

/// A header's value as a number.
pub(crate) fn header_u64(headers: Option<&HeaderMap>, name: &str) -> Result<u64, BoxError> {
    let value = headers
        .and_then(|h| h.get(name))
        .ok_or_else(|| format!("a message without its {name} header"))?;
    Ok(value.as_str().parse()?)
}

/// The first and the last version a save message holds.
pub(crate) fn range_of(headers: Option<&HeaderMap>) -> Result<(u64, u64), BoxError> {
    let (first, count) = (header_u64(headers, FIRST)?, header_u64(headers, COUNT)?);
    if first == 0 || count == 0 {
        return Err(format!("a save of {count} events from version {first}").into());
    }
    let last = first
        .checked_add(count - 1)
        .ok_or("a save past the last version")?;
    Ok((first, last))
}

/// A save message, read.
pub(crate) struct Save<'a> {
    /// The version of its first event.
    pub(crate) first: u64,
    /// When it was committed.
    recorded_at: OffsetDateTime,
    events: Vec<WireRef<'a>>,
}

impl<'a> Save<'a> {
    /// Reads a save message; an error names the aggregate and the first version.
    pub(crate) fn parse(
        headers: Option<&HeaderMap>,
        payload: &'a [u8],
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<Self, EventStoreError> {
        let corrupt = |version, source| EventStoreError::Deserialization {
            aggregate_id: aggregate_id.clone(),
            aggregate_type: aggregate_type.to_owned(),
            version,
            source,
        };
        let (first, last) = range_of(headers).map_err(|e| corrupt(0, e))?;
        let parsed = (|| -> Result<Self, BoxError> {
            let micros = i128::from(header_u64(headers, RECORDED_AT)?);
            let recorded_at = OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000)?;
            let events: Vec<WireRef<'a>> = serde_json::from_slice(payload)?;
            if events.len() as u64 != last - first + 1 {
                return Err(format!(
                    "a save of versions {first}..={last} holds {} events",
                    events.len()
                )
                .into());
            }
            Ok(Self {
                first,
                recorded_at,
                events,
            })
        })();
        parsed.map_err(|e| corrupt(first, e))
    }

    /// Its events with their versions, lowest first.
    pub(crate) fn events(&self) -> impl Iterator<Item = StoredEvent<'_>> {
        self.events
            .iter()
            .zip(self.first..)
            .map(|(event, version)| {
                StoredEvent::new(
                    version,
                    event.id,
                    &event.event_type,
                    Payload::Text(event.payload.get()),
                    Payload::Text(event.metadata.get()),
                    self.recorded_at,
                )
            })
    }
}

/// An event of a save as a [`RecordedEvent`].
pub(crate) fn recorded(
    event: &StoredEvent<'_>,
    aggregate_id: &AggregateId,
    aggregate_type: &str,
) -> Result<RecordedEvent, EventStoreError> {
    let value = |payload: Payload<'_>| {
        payload
            .to_value()
            .map_err(|e| EventStoreError::Deserialization {
                aggregate_id: aggregate_id.clone(),
                aggregate_type: aggregate_type.to_owned(),
                version: event.version,
                source: e.into(),
            })
    };
    let new = NewEvent::new(event.event_type, value(event.payload)?)
        .with_metadata(value(event.metadata)?)
        .with_event_id(event.event_id);
    Ok(RecordedEvent::new(
        aggregate_id,
        aggregate_type,
        event.version,
        new,
        event.recorded_at,
    ))
}
