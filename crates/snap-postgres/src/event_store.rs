use std::ops::ControlFlow;

use serde_json::Value;
use snap_core::{
    AggregateId, BackendError, BoxError, EventStore, EventStoreError, NewEvent, RecordedEvent,
    async_trait, validate,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresDatabase;
use crate::error::{is_disconnect, is_unique_violation, pg_error};
use crate::jsonb::Jsonb;

/// An [`EventStore`] on PostgreSQL with optimistic concurrency. Clones share the pool.
///
/// An append is one statement, so one round trip whatever the number of events: the events
/// go in as arrays through `UNNEST`, inserted only if the stream is at the expected version;
/// the primary key on (type, id, version) makes the loser of a race fail.
#[derive(Debug, Clone)]
pub struct PostgresEventStore {
    database: PostgresDatabase,
}

impl PostgresEventStore {
    pub(crate) fn from_database(database: PostgresDatabase) -> Self {
        Self { database }
    }

    /// A store on an existing pool, tables in the `public` schema (not migrated here).
    pub fn new(pool: sqlx::PgPool) -> Self {
        PostgresDatabase::new(pool).event_store()
    }

    /// Connects to a `postgres://` URL and migrates the `public` schema.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        Ok(PostgresDatabase::connect(url).await?.event_store())
    }

    /// The database this store writes to.
    pub fn database(&self) -> &PostgresDatabase {
        &self.database
    }

    async fn head(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<u64, sqlx::Error> {
        let sql = &self.database.sql().events;
        let id_text = aggregate_id.text();
        let version: i64 = self
            .database
            .retry(|pool| async move {
                sqlx::query_scalar(sql.current_version.clone())
                    .bind(aggregate_type)
                    .bind(&*id_text)
                    .fetch_one(&pool)
                    .await
            })
            .await?;
        Ok(u64::try_from(version).unwrap_or(0))
    }

    /// Whether the event at `version` is the one with `event_id`: after a lost reply, tells
    /// whether the earlier try of this append committed.
    async fn holds(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        version: u64,
        event_id: Uuid,
    ) -> Result<bool, sqlx::Error> {
        let sql = &self.database.sql().events;
        let id_text = aggregate_id.text();
        let found: Option<Uuid> = self
            .database
            .retry(|pool| async move {
                sqlx::query_scalar(sql.event_id_at.clone())
                    .bind(aggregate_type)
                    .bind(&*id_text)
                    .bind(to_i64(version))
                    .fetch_optional(&pool)
                    .await
            })
            .await?;
        Ok(found == Some(event_id))
    }
}

fn to_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

impl PostgresEventStore {
    /// What an append of `count` events, the first `first`, at `expected_version` came to,
    /// from the `(head, inserted)` its statement returned or the error it met.
    pub(crate) async fn settle(
        &self,
        (aggregate_id, aggregate_type, expected_version): (&AggregateId, &str, u64),
        (count, first): (u64, Uuid),
        result: Result<(i64, i64), sqlx::Error>,
    ) -> Result<u64, EventStoreError> {
        let head = match result {
            Ok((_, inserted)) if inserted > 0 => return Ok(expected_version + count),
            // The stream was not at the expected version when the statement began.
            Ok((head, _)) => u64::try_from(head).unwrap_or(0),
            // Another transaction inserted the same versions while this one ran.
            Err(e) if is_unique_violation(&e) => self
                .head(aggregate_id, aggregate_type)
                .await
                .map_err(|e| pg_error(e, "append"))?,
            Err(e) => return Err(pg_error(e, "append").into()),
        };
        // Either way, after a lost reply the other writer may be this append's own earlier
        // try, which committed: if our first event is in place, the append is done (and other
        // writers may have appended since).
        if head >= expected_version + count
            && self
                .holds(aggregate_id, aggregate_type, expected_version + 1, first)
                .await
                .map_err(|e| pg_error(e, "append"))?
        {
            return Ok(head);
        }
        Err(EventStoreError::Concurrency {
            aggregate_id: aggregate_id.clone(),
            aggregate_type: aggregate_type.to_owned(),
            expected: expected_version,
            actual: head,
        })
    }
}

fn decode(
    id: &AggregateId,
    aggregate_type: &str,
    row: &PgRow,
) -> Result<RecordedEvent, EventStoreError> {
    let version: i64 = row.try_get(0).unwrap_or(0);
    let decoded = (|| -> Result<RecordedEvent, BoxError> {
        let Json(payload): Json<Value> = row.try_get(3)?;
        let Json(metadata): Json<Value> = row.try_get(4)?;
        let recorded_at: OffsetDateTime = row.try_get(5)?;
        let event_type: String = row.try_get(2)?;
        let event = NewEvent::new(event_type, payload)
            .with_metadata(metadata)
            .with_event_id(row.try_get(1)?);
        Ok(RecordedEvent::new(
            id,
            aggregate_type,
            u64::try_from(version)?,
            event,
            recorded_at,
        ))
    })();
    decoded.map_err(|source| EventStoreError::Deserialization {
        aggregate_id: id.clone(),
        aggregate_type: aggregate_type.to_owned(),
        version: u64::try_from(version).unwrap_or(0),
        source,
    })
}

/// Why a streamed read stopped.
enum Read {
    Database(sqlx::Error),
    Event(EventStoreError),
}

impl PostgresEventStore {
    /// Streams `from < version <= to`, decoding each row as it arrives (so the client decodes
    /// while the server is still sending), in batches to `sink`. `from` follows the last
    /// event handed over.
    async fn stream(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        (from, to): (&mut i64, i64),
        sink: &mut (dyn FnMut(Vec<RecordedEvent>) -> ControlFlow<()> + Send),
    ) -> Result<(), Read> {
        let sql = &self.database.sql().events;
        let id_text = aggregate_id.text();
        let pool = self.database.pool();
        let mut rows = sqlx::query(sql.load.clone())
            .bind(aggregate_type)
            .bind(&*id_text)
            .bind(*from)
            .bind(to)
            .fetch(pool);
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
            let row = row.map_err(Read::Database)?;
            batch.push(decode(aggregate_id, aggregate_type, &row).map_err(Read::Event)?);
            if batch.len() == BATCH && hand_over(&mut batch, from, sink).is_break() {
                return Ok(());
            }
        }
        let _ = hand_over(&mut batch, from, sink);
        Ok(())
    }
}

/// Events a load fetches in one go before it streams the rest.
const FIRST_PAGE: i64 = 256;
/// Events per batch handed to a `load_batches` sink.
const BATCH: usize = 1_024;

/// Gives a non-empty batch to the sink and moves `from` past it.
fn hand_over(
    batch: &mut Vec<RecordedEvent>,
    from: &mut i64,
    sink: &mut (dyn FnMut(Vec<RecordedEvent>) -> ControlFlow<()> + Send),
) -> ControlFlow<()> {
    let Some(last) = batch.last() else {
        return ControlFlow::Continue(());
    };
    *from = to_i64(last.version);
    sink(std::mem::replace(batch, Vec::with_capacity(BATCH)))
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<u64, EventStoreError> {
        validate::append(aggregate_type, expected_version, &events)?;
        let conflict = |actual| EventStoreError::Concurrency {
            aggregate_id: aggregate_id.clone(),
            aggregate_type: aggregate_type.to_owned(),
            expected: expected_version,
            actual,
        };
        let Some(first) = events.first().map(|e| e.event_id) else {
            let head = self
                .head(aggregate_id, aggregate_type)
                .await
                .map_err(|e| pg_error(e, "append"))?;
            return if head == expected_version {
                Ok(head)
            } else {
                Err(conflict(head))
            };
        };
        let count = events.len() as u64;
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let payloads: Vec<Jsonb> = events.iter().map(|e| Jsonb::new(&e.payload)).collect();
        let metadata: Vec<Jsonb> = events.iter().map(|e| Jsonb::new(&e.metadata)).collect();
        let (ids, types, payloads, metadata) = (&ids, &types, &payloads, &metadata);
        let sql = &self.database.sql().events;
        let id_text = aggregate_id.text();
        let result = self
            .database
            .retry(|pool| async move {
                sqlx::query_as::<_, (i64, i64)>(sql.append.clone())
                    .bind(aggregate_type)
                    .bind(&*id_text)
                    .bind(to_i64(expected_version))
                    .bind(ids)
                    .bind(types)
                    .bind(payloads)
                    .bind(metadata)
                    .fetch_one(&pool)
                    .await
            })
            .await;
        self.settle(
            (aggregate_id, aggregate_type, expected_version),
            (count, first),
            result,
        )
        .await
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
        let to = to_i64(to_version.unwrap_or(u64::MAX));
        let mut from = to_i64(from_version);
        if from >= to {
            return Ok(());
        }
        // The first page in one fetch, decoded at once: a load after a snapshot usually ends
        // here, without the per-row cost of a stream.
        let sql = &self.database.sql().events;
        let id_text = aggregate_id.text();
        let page = self
            .database
            .retry(|pool| async move {
                sqlx::query(sql.load_page.clone())
                    .bind(aggregate_type)
                    .bind(&*id_text)
                    .bind(from)
                    .bind(to)
                    .bind(FIRST_PAGE)
                    .fetch_all(&pool)
                    .await
            })
            .await
            .map_err(|e| pg_error(e, "load"))?;
        let complete = page.len() < usize::try_from(FIRST_PAGE).unwrap_or(usize::MAX);
        let mut first: Vec<RecordedEvent> = page
            .iter()
            .map(|row| decode(aggregate_id, aggregate_type, row))
            .collect::<Result<_, _>>()?;
        if hand_over(&mut first, &mut from, sink).is_break() || complete {
            return Ok(());
        }
        // The rest streams. After a lost connection it resumes after the last event handed
        // over.
        let attempts = self.database.attempts();
        let mut attempt = 1;
        loop {
            if from >= to {
                return Ok(());
            }
            match self
                .stream(aggregate_id, aggregate_type, (&mut from, to), sink)
                .await
            {
                Err(Read::Database(e)) if attempt < attempts && is_disconnect(&e) => {
                    attempt += 1;
                }
                Err(Read::Database(e)) => return Err(pg_error(e, "load").into()),
                Err(Read::Event(e)) => return Err(e),
                Ok(()) => return Ok(()),
            }
        }
    }

    async fn current_version(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<u64, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        Ok(self
            .head(aggregate_id, aggregate_type)
            .await
            .map_err(|e| pg_error(e, "current_version"))?)
    }

    async fn list_aggregate_ids(
        &self,
        aggregate_type: &str,
        after: Option<&AggregateId>,
        limit: usize,
    ) -> Result<Vec<AggregateId>, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        let sql = &self.database.sql().events;
        let after = after.map(ToString::to_string);
        let after = after.as_deref();
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids: Vec<String> = self
            .database
            .retry(|pool| async move {
                match after {
                    None => sqlx::query_scalar(sql.list_ids_first.clone())
                        .bind(aggregate_type)
                        .bind(limit),
                    Some(after) => sqlx::query_scalar(sql.list_ids_after.clone())
                        .bind(aggregate_type)
                        .bind(limit)
                        .bind(after),
                }
                .fetch_all(&pool)
                .await
            })
            .await
            .map_err(|e| pg_error(e, "list_aggregate_ids"))?;
        ids.into_iter()
            .map(|id| AggregateId::parse_stored("postgres", id).map_err(EventStoreError::from))
            .collect()
    }
}
