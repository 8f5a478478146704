//! Reading one aggregate's saves from a stream sequence on: one short-lived pull consumer,
//! fetched in batches, deleted when the read ends.

use std::ops::ControlFlow;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use futures_util::StreamExt;
use snap_core::{BackendError, BoxError, EventStoreError};

use crate::NatsDatabase;

/// The most messages one fetch asks for.
const BATCH: usize = 256;
/// The most bytes one fetch asks for (at least twice the server's `max_payload`).
const BATCH_BYTES: usize = 8 << 20;
/// How long the server keeps a consumer whose reader went away without deleting it.
const ABANDONED_AFTER: Duration = Duration::from_secs(10);

/// What a read hands each message to; `Break` ends the read.
pub(crate) type Each<'a> =
    dyn FnMut(&async_nats::Message) -> Result<ControlFlow<()>, EventStoreError> + Send + 'a;

/// A read that waited longer than the request timeout for the server: retryable.
fn timed_out(after: Duration) -> EventStoreError {
    let error = BackendError::new(
        "nats",
        format!("no message from the server within {after:?}"),
    )
    .context("read a stream")
    .retryable(true);
    EventStoreError::from(error)
}

fn read_error(error: impl Into<BoxError>) -> EventStoreError {
    EventStoreError::from(crate::error::backend(error, "read a stream"))
}

/// Hands each message of `subject` from stream sequence `start` on to `each`, in order, until
/// `each` breaks or every message the stream held when the read began has been handed over.
pub(crate) async fn saves(
    database: &NatsDatabase,
    subject: &str,
    start: u64,
    each: &mut Each<'_>,
) -> Result<(), EventStoreError> {
    let deliver = DeliverPolicy::ByStartSequence {
        start_sequence: start.max(1),
    };
    messages(database, &database.inner.events, (subject, deliver), each).await
}

/// Hands each message of `stream` that `filter` selects and `deliver` starts at to `each`,
/// in order, until `each` breaks or every message pending when the read began has been
/// handed over.
///
/// The consumer lives on the server only for the read: it keeps no state on disk, and it is
/// deleted when the read ends (or, if the reader vanishes, a few seconds later).
pub(crate) async fn messages(
    database: &NatsDatabase,
    stream: &Stream,
    (filter, deliver): (&str, DeliverPolicy),
    each: &mut Each<'_>,
) -> Result<(), EventStoreError> {
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: filter.to_owned(),
            deliver_policy: deliver,
            ack_policy: AckPolicy::None,
            memory_storage: true,
            num_replicas: 1,
            inactive_threshold: ABANDONED_AFTER,
            ..Default::default()
        })
        .await
        .map_err(|e| EventStoreError::from(crate::error::backend(e, "open a read of a stream")))?;
    let info = consumer.cached_info();
    let (pending, name) = (info.num_pending, info.name.clone());
    // A batch's bytes bound holds at least one message of the largest size the server takes.
    let max_bytes = BATCH_BYTES.max(database.max_payload().saturating_mul(2));
    let timeout = database.inner.timeout;
    let read = fetch_all(&consumer, (pending, max_bytes, timeout), each).await;
    // No need to wait for the answer: the request is queued on the connection, and a consumer
    // it misses goes away on its own.
    let client = &database.inner.client;
    let delete = format!(
        "$JS.API.CONSUMER.DELETE.{}.{name}",
        stream.cached_info().config.name
    );
    let _ = client
        .publish_with_reply(delete, client.new_inbox(), Bytes::new())
        .await;
    read
}

async fn fetch_all(
    consumer: &PullConsumer,
    (pending, max_bytes, timeout): (u64, usize, Duration),
    each: &mut Each<'_>,
) -> Result<(), EventStoreError> {
    let mut left = pending;
    while left > 0 {
        let mut batch = consumer
            .fetch()
            .max_messages(usize::try_from(left).unwrap_or(BATCH).min(BATCH))
            .max_bytes(max_bytes)
            .messages()
            .await
            .map_err(read_error)?;
        let mut got = 0;
        // A fetch is answered by the server that holds the consumer; if that server goes
        // away mid-read, nothing answers at all: wait no longer than for any request.
        while let Some(message) = tokio::time::timeout(timeout, batch.next())
            .await
            .map_err(|_| timed_out(timeout))?
        {
            let message = match message {
                Ok(message) => message,
                // The server ends a fetch whose next message would pass its byte bound with
                // a status: the batch is over, and the next fetch starts at that message.
                Err(_) if got > 0 => break,
                Err(e) => return Err(read_error(e)),
            };
            got += 1;
            left -= 1;
            if each(&message)?.is_break() || left == 0 {
                return Ok(());
            }
        }
        if got == 0 {
            return Err(read_error(format!(
                "the stream stopped with {left} messages still to read"
            )));
        }
    }
    Ok(())
}
