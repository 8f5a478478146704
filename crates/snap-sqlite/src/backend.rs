//! [`Backend`] on a [`SqliteDatabase`]: a load is one pooled connection and one read
//! transaction; a commit is one write transaction, its snapshot under a savepoint.

use std::ops::ControlFlow;
use std::sync::Arc;

use rusqlite::{Connection, Row, TransactionBehavior};
use snap_core::{
    Backend, BoxError, Commit, Committed, DynEventStore, DynSnapshotStore, EventStoreError,
    LoadRequest, LoadSink, Loaded, Payload, Snapshot, SnapshotError, SnapshotRead,
    SnapshotWrite as Written, StoredEvent, async_trait, validate,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteDatabase;
use crate::codec::{timestamp_from_sql, uuid_from_sql, version_from_sql, version_to_sql};
use crate::error::sqlite_error;
use crate::event_store::{Append, FIRST_PAGE, LOAD, Range, current_version, stream};
use crate::snapshot_store::{GET_AT, SnapshotWrite, query_one};

/// An event row as read, its JSON left as text for the sink to decode once.
struct RawEvent {
    version: u64,
    event_id: Uuid,
    event_type: String,
    payload: String,
    metadata: String,
    recorded_at: OffsetDateTime,
}

impl RawEvent {
    fn stored(&self) -> StoredEvent<'_> {
        StoredEvent::new(
            self.version,
            self.event_id,
            &self.event_type,
            Payload::Text(&self.payload),
            Payload::Text(&self.metadata),
            self.recorded_at,
        )
    }
}

fn text(value: rusqlite::types::ValueRef<'_>) -> Result<String, BoxError> {
    Ok(std::str::from_utf8(value.as_bytes()?)?.to_owned())
}

/// The error of an event row of `range` that could not be read.
fn unreadable(range: &Range, row: &Row<'_>, source: BoxError) -> EventStoreError {
    EventStoreError::Deserialization {
        aggregate_id: range.aggregate_id.clone(),
        aggregate_type: range.aggregate_type.clone(),
        version: row
            .get_ref(0)
            .ok()
            .and_then(|v| version_from_sql(v).ok())
            .unwrap_or(0),
        source,
    }
}

fn raw(range: &Range, row: &Row<'_>) -> Result<RawEvent, EventStoreError> {
    let fields = (|| -> Result<RawEvent, BoxError> {
        Ok(RawEvent {
            version: version_from_sql(row.get_ref(0)?)?,
            event_id: uuid_from_sql(row.get_ref(1)?)?,
            event_type: text(row.get_ref(2)?)?,
            payload: text(row.get_ref(3)?)?,
            metadata: text(row.get_ref(4)?)?,
            recorded_at: timestamp_from_sql(row.get_ref(5)?)?,
        })
    })();
    fields.map_err(|source| unreadable(range, row, source))
}

/// What the first read of a load returns: the snapshot, the first page of events after it and,
/// when there are none, the stream's head.
struct FirstRead {
    snapshot: Option<Result<Option<Snapshot>, SnapshotError>>,
    page: Vec<RawEvent>,
    head: u64,
}

/// Reads the first page of `range` and, when it is empty, the stream's head.
fn first_page(
    connection: &Connection,
    range: &Range,
) -> Result<(Vec<RawEvent>, u64), EventStoreError> {
    let mut page = Vec::new();
    if range.from < range.to {
        range.read(connection, FIRST_PAGE, raw, &mut |event| {
            page.push(event);
            ControlFlow::Continue(())
        })?;
    }
    let head = match page.last() {
        Some(last) => last.version,
        None => current_version(
            connection,
            &range.aggregate_type,
            &range.aggregate_id.text(),
        )
        .map_err(|e| sqlite_error(e, "load: read head"))?,
    };
    Ok((page, head))
}

/// An event row, borrowed: its JSON handed over as the text stored.
fn borrowed<'r>(range: &Range, row: &'r Row<'_>) -> Result<StoredEvent<'r>, EventStoreError> {
    let fields = (|| -> Result<StoredEvent<'r>, BoxError> {
        let text = |i| -> Result<&'r str, BoxError> {
            Ok(std::str::from_utf8(row.get_ref(i)?.as_bytes()?)?)
        };
        Ok(StoredEvent::new(
            version_from_sql(row.get_ref(0)?)?,
            uuid_from_sql(row.get_ref(1)?)?,
            text(2)?,
            Payload::Text(text(3)?),
            Payload::Text(text(4)?),
            timestamp_from_sql(row.get_ref(5)?)?,
        ))
    })();
    fields.map_err(|source| unreadable(range, row, source))
}

/// Turns a row into the event a sink reads.
type EventOfRow = for<'r, 's> fn(&Range, &'r Row<'s>) -> Result<StoredEvent<'r>, EventStoreError>;

/// The events of a range, version and payload only.
const LOAD_PAYLOADS: &str = "SELECT version, payload FROM events
     WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND version > ?3 AND version <= ?4
     ORDER BY version LIMIT ?5";

/// A row of [`LOAD_PAYLOADS`], borrowed.
fn payload_of<'r>(range: &Range, row: &'r Row<'_>) -> Result<StoredEvent<'r>, EventStoreError> {
    let fields = (|| -> Result<StoredEvent<'r>, BoxError> {
        let payload = std::str::from_utf8(row.get_ref(1)?.as_bytes()?)?;
        Ok(StoredEvent::payload_only(
            version_from_sql(row.get_ref(0)?)?,
            Payload::Text(payload),
        ))
    })();
    fields.map_err(|source| unreadable(range, row, source))
}

/// A whole load on one connection, in one read transaction, each row handed to the sink as it
/// is read: what a load does where it may block in place. A payload-only load reads two
/// columns of each row instead of six.
fn load_in_place(
    connection: &mut Connection,
    mut range: Range,
    (through, payload_only): (bool, bool),
    sink: &mut dyn LoadSink,
) -> Result<Loaded, EventStoreError> {
    let tx = connection
        .transaction()
        .map_err(|e| sqlite_error(e, "begin load"))?;
    if through {
        let found = query_one(
            &tx,
            GET_AT,
            &range.aggregate_id,
            range.aggregate_type.clone(),
            range.to,
        );
        let version = found
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .map(|s| s.version);
        let read = match found {
            Ok(Some(snapshot)) => SnapshotRead::Found(snapshot),
            Ok(None) => SnapshotRead::Missing,
            Err(error) => SnapshotRead::Failed(error),
        };
        if sink.snapshot(read) {
            range.from = version_to_sql(version.unwrap_or(0));
        }
    }
    let mut last = None;
    if range.from < range.to {
        let (sql, decode): (&str, EventOfRow) = if payload_only {
            (LOAD_PAYLOADS, payload_of)
        } else {
            (LOAD, borrowed)
        };
        let mut statement = tx
            .prepare_cached(sql)
            .map_err(|e| sqlite_error(e, "prepare load"))?;
        let mut rows = statement
            .query(rusqlite::params![
                range.aggregate_type,
                &*range.aggregate_id.text(),
                range.from,
                range.to,
                -1_i64
            ])
            .map_err(|e| sqlite_error(e, "load"))?;
        while let Some(row) = rows.next().map_err(|e| sqlite_error(e, "load"))? {
            let event = decode(&range, row)?;
            last = Some(event.version);
            if sink.event(&event).is_break() {
                break;
            }
        }
    }
    if let Some(version) = last {
        return Ok(Loaded::new(version));
    }
    let head = current_version(&tx, &range.aggregate_type, &range.aggregate_id.text())
        .map_err(|e| sqlite_error(e, "load: read head"))?;
    Ok(Loaded::at_head(head, u64::try_from(range.to).ok()))
}

impl SqliteDatabase {
    /// The first page of events in `from < version <= to`, and the head, in one call.
    async fn page(&self, range: Range) -> Result<(Vec<RawEvent>, u64), EventStoreError> {
        self.run(move |connection| first_page(connection, &range))
            .await?
    }
}

#[async_trait]
impl Backend for SqliteDatabase {
    async fn load(
        &self,
        request: &LoadRequest<'_>,
        sink: &mut dyn LoadSink,
    ) -> Result<Loaded, EventStoreError> {
        validate::aggregate_type(request.aggregate_type)?;
        let through = request.through_snapshot;
        let up_to = request.up_to;
        let mut range = Range {
            aggregate_id: request.aggregate_id.clone(),
            aggregate_type: request.aggregate_type.to_owned(),
            from: 0,
            to: version_to_sql(up_to.unwrap_or(u64::MAX)),
        };
        // Where the load may block in place, it runs whole on one connection and the sink
        // reads each row where it lies, with no copy; elsewhere the rows are copied out to the
        // async side, the first page at once and the rest streamed.
        if let Some(loaded) = self
            .borrowing(|connection| {
                let fields = (through, request.payload_only);
                load_in_place(connection, range.clone(), fields, &mut *sink)
            })
            .await?
        {
            return loaded;
        }
        let first = {
            let mut range = range.clone();
            self.run(move |connection| -> Result<FirstRead, EventStoreError> {
                // One read transaction: the snapshot and the events are one view of the file.
                let tx = connection
                    .transaction()
                    .map_err(|e| sqlite_error(e, "begin load"))?;
                let snapshot = through.then(|| {
                    query_one(
                        &tx,
                        GET_AT,
                        &range.aggregate_id,
                        range.aggregate_type.clone(),
                        range.to,
                    )
                });
                if let Some(Ok(Some(found))) = &snapshot {
                    range.from = version_to_sql(found.version);
                }
                let (page, head) = first_page(&tx, &range)?;
                Ok(FirstRead {
                    snapshot,
                    page,
                    head,
                })
            })
            .await??
        };
        let (mut page, mut head) = (first.page, first.head);
        if let Some(snapshot) = first.snapshot {
            let from = snapshot
                .as_ref()
                .ok()
                .and_then(Option::as_ref)
                .map_or(0, |found| found.version);
            let read = match snapshot {
                Ok(Some(found)) => SnapshotRead::Found(found),
                Ok(None) => SnapshotRead::Missing,
                Err(error) => SnapshotRead::Failed(error),
            };
            if sink.snapshot(read) {
                range.from = version_to_sql(from);
            } else if from > 0 {
                // The sink replays the whole stream instead: read it from the start.
                (page, head) = self.page(range.clone()).await?;
            }
        }
        let full = page.len() == FIRST_PAGE;
        let mut last = None;
        for event in &page {
            last = Some(event.version);
            if sink.event(&event.stored()).is_break() {
                return Ok(Loaded::new(event.version));
            }
        }
        if let (true, Some(version)) = (full, last) {
            range.from = version_to_sql(version);
            stream(self, range, raw, &mut |batch| {
                for event in &batch {
                    last = Some(event.version);
                    if sink.event(&event.stored()).is_break() {
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            })
            .await?;
        }
        Ok(last.map_or_else(|| Loaded::at_head(head, up_to), Loaded::new))
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Committed, EventStoreError> {
        let append = Append::new(
            &commit.aggregate_id,
            &commit.aggregate_type,
            commit.expected_version,
            &commit.events,
        )?;
        let (snapshot, refused) = match commit.snapshot.map(|s| SnapshotWrite::new(&s, self.keep)) {
            Some(Ok(write)) => (Some(write), None),
            Some(Err(error)) => (None, Some(error)),
            None => (None, None),
        };
        let (version, written) = self
            .run(move |connection| -> Result<_, EventStoreError> {
                let mut tx = connection
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| sqlite_error(e, "begin commit"))?;
                let version = append.insert(&tx)?;
                let written = snapshot.map(|write| {
                    // A failing snapshot rolls back to here; the events still commit.
                    let savepoint = tx
                        .savepoint()
                        .map_err(|e| (e, "savepoint before the snapshot"))?;
                    write.upsert(&savepoint)?;
                    savepoint
                        .commit()
                        .map_err(|e| (e, "release the snapshot savepoint"))
                });
                tx.commit().map_err(|e| sqlite_error(e, "commit"))?;
                Ok((version, written))
            })
            .await??;
        let written = match (written, refused) {
            (Some(Ok(())), _) => Written::Written,
            (Some(Err((error, context))), _) => {
                Written::Failed(SnapshotError::from(sqlite_error(error, context)))
            }
            (None, Some(error)) => Written::Failed(error),
            (None, None) => Written::NotAsked,
        };
        Ok(Committed::new(version, written))
    }

    fn event_store(&self) -> Arc<DynEventStore> {
        Arc::new(SqliteDatabase::event_store(self))
    }

    fn snapshot_store(&self) -> Option<Arc<DynSnapshotStore>> {
        Some(Arc::new(SqliteDatabase::snapshot_store(self)))
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}
