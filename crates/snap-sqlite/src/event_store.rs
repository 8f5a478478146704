use std::ops::ControlFlow;

use rusqlite::{Connection, ErrorCode, Row, TransactionBehavior, params};
use snap_core::{
    AggregateId, BoxError, EventStore, EventStoreError, NewEvent, RecordedEvent, async_trait, now,
    validate,
};
use uuid::Uuid;

use crate::SqliteDatabase;
use crate::codec::{
    json_from_sql, json_to_sql, text_from_sql, timestamp_from_sql, timestamp_to_sql, uuid_from_sql,
    version_from_sql, version_to_sql,
};
use crate::error::sqlite_error;

const CURRENT_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM events
     WHERE aggregate_type = ?1 AND aggregate_id = ?2";

/// An [`EventStore`] on a SQLite database, with optimistic concurrency. Clones share the
/// database.
#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    database: SqliteDatabase,
}

impl SqliteEventStore {
    pub(crate) fn new(database: SqliteDatabase) -> Self {
        Self { database }
    }

    /// Opens (creating and migrating if needed) a database file and returns its event store.
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, snap_core::BackendError> {
        Ok(SqliteDatabase::open(path).await?.event_store())
    }

    /// An event store on a private in-memory database.
    pub async fn open_in_memory() -> Result<Self, snap_core::BackendError> {
        Ok(SqliteDatabase::open_in_memory().await?.event_store())
    }

    /// The database this store writes to.
    pub fn database(&self) -> &SqliteDatabase {
        &self.database
    }

    async fn run<R, F>(&self, f: F) -> Result<R, EventStoreError>
    where
        F: FnOnce(&mut Connection) -> Result<R, EventStoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.database.run(f).await?
    }
}

pub(crate) fn current_version(
    connection: &Connection,
    aggregate_type: &str,
    id: &str,
) -> rusqlite::Result<u64> {
    connection
        .prepare_cached(CURRENT_VERSION)?
        .query_row(params![aggregate_type, id], |row| row.get::<_, i64>(0))
        .map(|v| u64::try_from(v).unwrap_or(0))
}

/// Events a load reads on the caller's path before it hands the rest to a reader thread.
pub(crate) const FIRST_PAGE: usize = 256;
/// Events per batch handed from the reader thread to the sink.
const BATCH: usize = 1_024;
/// Batches the reader thread may run ahead of the sink.
const BATCHES_AHEAD: usize = 4;

pub(crate) const LOAD: &str =
    "SELECT version, event_id, event_type, payload, metadata, recorded_at FROM events
     WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND version > ?3 AND version <= ?4
     ORDER BY version LIMIT ?5";

/// The events a load reads: `from < version <= to` of one stream.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub(crate) aggregate_id: AggregateId,
    pub(crate) aggregate_type: String,
    pub(crate) from: i64,
    pub(crate) to: i64,
}

/// Turns one row of [`LOAD`] into what a read hands over.
pub(crate) type RowDecoder<T> = fn(&Range, &Row<'_>) -> Result<T, EventStoreError>;

impl Range {
    /// Reads at most `limit` events in order, decoded by `decode`, into `emit`, until it
    /// breaks.
    pub(crate) fn read<T>(
        &self,
        connection: &Connection,
        limit: usize,
        decode: RowDecoder<T>,
        emit: &mut dyn FnMut(T) -> ControlFlow<()>,
    ) -> Result<(), EventStoreError> {
        let mut statement = connection
            .prepare_cached(LOAD)
            .map_err(|e| sqlite_error(e, "prepare load"))?;
        let limit = i64::try_from(limit).unwrap_or(-1);
        let mut rows = statement
            .query(params![
                self.aggregate_type,
                &*self.aggregate_id.text(),
                self.from,
                self.to,
                limit
            ])
            .map_err(|e| sqlite_error(e, "load"))?;
        while let Some(row) = rows.next().map_err(|e| sqlite_error(e, "load"))? {
            if emit(decode(self, row)?).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Reads the whole range and hands it to `hand` in batches of [`BATCH`] events (the last
    /// may be shorter), until `hand` breaks. On a read error the events of the unfinished
    /// batch are not handed over.
    fn read_batches<T>(
        &self,
        connection: &Connection,
        decode: RowDecoder<T>,
        hand: &mut dyn FnMut(Vec<T>) -> ControlFlow<()>,
    ) -> Result<(), EventStoreError> {
        let mut batch = Vec::with_capacity(BATCH);
        let mut stopped = false;
        self.read(connection, usize::MAX, decode, &mut |event| {
            batch.push(event);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if hand(full).is_break() {
                    stopped = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        if !stopped && !batch.is_empty() {
            let _ = hand(batch);
        }
        Ok(())
    }
}

/// Reads `range` on a blocking thread and hands it to `sink` in batches through a bounded
/// channel, so the rows of the next batch are decoded while the sink works on this one.
pub(crate) async fn stream<T: Send + 'static>(
    database: &SqliteDatabase,
    range: Range,
    decode: RowDecoder<T>,
    sink: &mut (dyn FnMut(Vec<T>) -> ControlFlow<()> + Send),
) -> Result<(), EventStoreError> {
    let connection = database.connection().await?;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No tokio runtime to read on in parallel (another executor drives this future):
        // read here and hand each batch to the sink as it fills.
        return range.read_batches(&connection, decode, sink);
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
    let reader = move || {
        let read = range.read_batches(&connection, decode, &mut |batch| {
            if tx.blocking_send(Ok(batch)).is_err() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Err(e) = read {
            let _ = tx.blocking_send(Err(e));
        }
    };
    let handle = runtime.spawn_blocking(reader);
    while let Some(batch) = rx.recv().await {
        if sink(batch?).is_break() {
            break;
        }
    }
    drop(rx);
    handle.await.map_err(|e| {
        EventStoreError::from(
            snap_core::BackendError::new("sqlite", e).context("event reader thread failed"),
        )
    })
}

/// One event ready for the INSERT: JSON already rendered on the async side.
struct EncodedEvent {
    event_id: Uuid,
    event_type: String,
    payload: String,
    metadata: String,
}

/// An append, checked and encoded on the async side, to run inside a write transaction.
pub(crate) struct Append {
    aggregate_id: AggregateId,
    aggregate_type: String,
    expected_version: u64,
    events: Vec<EncodedEvent>,
    recorded_at: i64,
}

impl Append {
    /// Checks the input and renders the events' JSON.
    pub(crate) fn new(
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Self, EventStoreError> {
        validate::append(aggregate_type, expected_version, events)?;
        Ok(Self {
            aggregate_id: aggregate_id.clone(),
            aggregate_type: aggregate_type.to_owned(),
            expected_version,
            events: events
                .iter()
                .map(|e| EncodedEvent {
                    event_id: e.event_id,
                    event_type: e.event_type.clone(),
                    payload: json_to_sql(&e.payload),
                    metadata: json_to_sql(&e.metadata),
                })
                .collect(),
            recorded_at: timestamp_to_sql(now()),
        })
    }

    /// Checks the version and inserts the events on `tx`, a transaction that holds the write
    /// lock (IMMEDIATE), so no other writer can slip in between the check and the inserts; the
    /// primary key is the backstop. Returns the stream's new version.
    pub(crate) fn insert(&self, tx: &Connection) -> Result<u64, EventStoreError> {
        let id = self.aggregate_id.text();
        let id = &*id;
        let conflict = |actual| EventStoreError::Concurrency {
            aggregate_id: self.aggregate_id.clone(),
            aggregate_type: self.aggregate_type.clone(),
            expected: self.expected_version,
            actual,
        };
        let current = current_version(tx, &self.aggregate_type, id)
            .map_err(|e| sqlite_error(e, "append: read version"))?;
        if current != self.expected_version {
            return Err(conflict(current));
        }
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events (aggregate_type, aggregate_id, version, event_id, event_type, payload, metadata, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(|e| sqlite_error(e, "prepare append"))?;
        let mut event_id = Uuid::encode_buffer();
        for (event, version) in self.events.iter().zip(self.expected_version + 1..) {
            let inserted = insert.execute(params![
                self.aggregate_type,
                id,
                version_to_sql(version),
                &*event.event_id.hyphenated().encode_lower(&mut event_id),
                event.event_type,
                event.payload,
                event.metadata,
                self.recorded_at,
            ]);
            match inserted {
                Ok(_) => {}
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                    return Err(conflict(version - 1));
                }
                Err(e) => return Err(sqlite_error(e, "append").into()),
            }
        }
        Ok(self.expected_version + self.events.len() as u64)
    }
}

/// A row as a [`RecordedEvent`], its JSON parsed.
fn recorded(range: &Range, row: &Row<'_>) -> Result<RecordedEvent, EventStoreError> {
    let (id, aggregate_type) = (&range.aggregate_id, range.aggregate_type.as_str());
    let version = row
        .get_ref(0)
        .ok()
        .and_then(|v| version_from_sql(v).ok())
        .unwrap_or(0);
    let decoded = (|| -> Result<RecordedEvent, BoxError> {
        let event = NewEvent::new(
            text_from_sql(row.get_ref(2)?)?,
            json_from_sql(row.get_ref(3)?)?,
        )
        .with_metadata(json_from_sql(row.get_ref(4)?)?)
        .with_event_id(uuid_from_sql(row.get_ref(1)?)?);
        Ok(RecordedEvent::new(
            id.clone(),
            aggregate_type,
            version_from_sql(row.get_ref(0)?)?,
            event,
            timestamp_from_sql(row.get_ref(5)?)?,
        ))
    })();
    decoded.map_err(|source| EventStoreError::Deserialization {
        aggregate_id: id.clone(),
        aggregate_type: aggregate_type.to_owned(),
        version,
        source,
    })
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<u64, EventStoreError> {
        let append = Append::new(aggregate_id, aggregate_type, expected_version, &events)?;
        self.run(move |connection| {
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| sqlite_error(e, "begin append"))?;
            let version = append.insert(&tx)?;
            tx.commit().map_err(|e| sqlite_error(e, "commit append"))?;
            Ok(version)
        })
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
        let range = Range {
            aggregate_id: aggregate_id.clone(),
            aggregate_type: aggregate_type.to_owned(),
            from: version_to_sql(from_version),
            to: version_to_sql(to_version.unwrap_or(u64::MAX)),
        };
        if range.from >= range.to {
            return Ok(());
        }
        // The first page on the caller's path, with no thread hop: a load after a snapshot
        // usually ends here.
        let first = {
            let range = range.clone();
            self.run(move |connection| {
                let mut page = Vec::new();
                range.read(connection, FIRST_PAGE, recorded, &mut |event| {
                    page.push(event);
                    ControlFlow::Continue(())
                })?;
                Ok(page)
            })
            .await?
        };
        let complete = first.len() < FIRST_PAGE;
        let Some(last) = first.last().map(|e| e.version) else {
            return Ok(());
        };
        if sink(first).is_break() || complete {
            return Ok(());
        }
        let rest = Range {
            from: version_to_sql(last),
            ..range
        };
        stream(&self.database, rest, recorded, sink).await
    }
    async fn current_version(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<u64, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        let aggregate_type = aggregate_type.to_owned();
        let aggregate_id = aggregate_id.clone();
        self.run(move |connection| {
            current_version(connection, &aggregate_type, &aggregate_id.text())
                .map_err(|e| sqlite_error(e, "current_version").into())
        })
        .await
    }

    async fn list_aggregate_ids(
        &self,
        aggregate_type: &str,
        after: Option<&AggregateId>,
        limit: usize,
    ) -> Result<Vec<AggregateId>, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        let aggregate_type = aggregate_type.to_owned();
        // Ids sort by their text; "" sorts before every id.
        let after = after.map(ToString::to_string).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT DISTINCT aggregate_id FROM events
                     WHERE aggregate_type = ?1 AND aggregate_id > ?2
                     ORDER BY aggregate_id LIMIT ?3",
                )
                .map_err(|e| sqlite_error(e, "prepare list_aggregate_ids"))?;
            let rows = statement
                .query_map(params![aggregate_type, after, limit], |row| {
                    row.get::<_, String>(0)
                })
                .map_err(|e| sqlite_error(e, "list_aggregate_ids"))?;
            let mut ids = Vec::new();
            for row in rows {
                let text = row.map_err(|e| sqlite_error(e, "list_aggregate_ids"))?;
                ids.push(AggregateId::parse_stored("sqlite", text)?);
            }
            Ok(ids)
        })
        .await
    }
}
