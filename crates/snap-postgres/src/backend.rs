//! [`Backend`] on a [`PostgresDatabase`]: a load is one statement (the snapshot, the first page
//! of events after it and the head, in one round trip), streamed beyond; a commit with a
//! snapshot is one statement too, or one transaction when history is kept.

use std::sync::Arc;

use snap_core::{
    AggregateId, Backend, BoxError, Commit, Committed, DynEventStore, DynSnapshotStore, EventStore,
    EventStoreError, LoadRequest, LoadSink, Loaded, NewEvent, Payload, Snapshot, SnapshotError,
    SnapshotRead, SnapshotStore, SnapshotWrite, StoredEvent, async_trait, normalize_timestamp,
    validate,
};
use sqlx::postgres::PgRow;
use sqlx::{Acquire, Row, SqlStr};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresDatabase;
use crate::database::{append_ctes, head, sql};
use crate::error::{is_disconnect, is_unique_violation, pg_error};
use crate::jsonb::Jsonb;
use crate::snapshot_store::{Encoded, assemble, write_history};

/// Events the load statement returns with the snapshot; the rest stream.
const FIRST_PAGE: i64 = 256;

/// The statements of the backend, built once per schema.
#[derive(Debug)]
pub(crate) struct BackendSql {
    // Each load statement twice: every event column, and (at index 1) payloads only.
    load_latest: [SqlStr; 2],
    load_at: [SqlStr; 2],
    load_replay: [SqlStr; 2],
    load_rest: [SqlStr; 2],
    commit_latest: SqlStr,
}

/// The event columns a load selects: all of them, or (`payload_only`) the version and the
/// payload with the rest left NULL.
fn event_columns(payload_only: bool) -> &'static str {
    if payload_only {
        "version, NULL::uuid, NULL::text, payload::text, NULL::text, NULL::timestamptz"
    } else {
        "version, event_id, event_type, payload::text, metadata::text, recorded_at"
    }
}

/// One load statement: the snapshot `snap` selects (at most one row), the events after it up
/// to `$3` (at most `$4`), and the head. Each row says what it is in `part`: 0 the snapshot,
/// 1 an event, 2 the head, in no promised order (no sort on the server: the client places
/// them). Columns 1 to 6 are an event's (version, id, type, payload,
/// metadata, time); a snapshot puts its state in the payload's place, its `updated_at` in the
/// time's, then its schema version and its `created_at`.
fn load(s: &str, key: &str, snap: &str) -> [SqlStr; 2] {
    [false, true].map(|payload_only| load_one(s, key, snap, event_columns(payload_only)))
}

fn load_one(s: &str, key: &str, snap: &str, events: &str) -> SqlStr {
    let head = head(s);
    sql(format!(
        "WITH snap AS ({snap})
         SELECT * FROM (
             SELECT 0 AS part, version, NULL::uuid AS event_id, NULL::text AS event_type,
                    state::text AS payload, NULL::text AS metadata, updated_at AS at,
                    schema_version, created_at
             FROM snap
             UNION ALL
             (SELECT 1, {events}, NULL, NULL
              FROM {s}.events
              WHERE {key} AND version > COALESCE((SELECT version FROM snap), 0) AND version <= $3
              ORDER BY version LIMIT $4)
             UNION ALL
             SELECT 2, COALESCE(({head}), 0), NULL, NULL, NULL, NULL, NULL, NULL, NULL
         ) AS parts"
    ))
}

impl BackendSql {
    pub(crate) fn new(s: &str, key: &str) -> Self {
        let cols = "version, schema_version, state, created_at, updated_at";
        Self {
            load_latest: load(
                s,
                key,
                &format!("SELECT {cols} FROM {s}.snapshots WHERE {key} AND version <= $3"),
            ),
            load_at: load(
                s,
                key,
                &format!(
                    "SELECT {cols} FROM (
                         SELECT {cols} FROM {s}.snapshots WHERE {key} AND version <= $3
                         UNION ALL
                         (SELECT {cols} FROM {s}.snapshot_history WHERE {key} AND version <= $3
                          ORDER BY version DESC LIMIT 1)
                     ) AS found ORDER BY version DESC LIMIT 1"
                ),
            ),
            load_replay: load(
                s,
                key,
                &format!("SELECT {cols} FROM {s}.snapshots WHERE false"),
            ),
            load_rest: [false, true].map(|payload_only| {
                sql(format!(
                    "SELECT {} FROM {s}.events
                     WHERE {key} AND version > $3 AND version <= $4 ORDER BY version",
                    event_columns(payload_only)
                ))
            }),
            // The append of the event store with the snapshot upsert of the snapshot store
            // riding on it: the snapshot is written only if the events were, never over a
            // higher version, and clears history left by a store that kept more.
            commit_latest: sql(format!(
                "{},
                      saved AS (
                          INSERT INTO {s}.snapshots (aggregate_type, aggregate_id, {cols})
                          SELECT $1, $2, $8, $9, $10, $11, $12
                          WHERE EXISTS (SELECT 1 FROM inserted)
                            AND NOT EXISTS (SELECT 1 FROM {s}.snapshot_history
                                            WHERE {key} AND version > $8)
                          ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
                              version = EXCLUDED.version,
                              schema_version = EXCLUDED.schema_version,
                              state = EXCLUDED.state,
                              updated_at = EXCLUDED.updated_at
                          WHERE snapshots.version <= EXCLUDED.version
                          RETURNING 1),
                      cleared AS (
                          DELETE FROM {s}.snapshot_history
                          WHERE {key} AND EXISTS (SELECT 1 FROM saved))
                 SELECT head.version, (SELECT count(*) FROM inserted) FROM head",
                append_ctes(s)
            )),
        }
    }
}

fn to_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

/// The snapshot of a load row (`part` 0).
fn snapshot_of(
    id: &AggregateId,
    aggregate_type: &str,
    row: &PgRow,
) -> Result<Snapshot, SnapshotError> {
    let decoded = (|| -> Result<Snapshot, BoxError> {
        let text: &str = row.try_get(4)?;
        assemble(
            (id, aggregate_type),
            (row.try_get(1)?, row.try_get(7)?),
            serde_json::from_str(text)?,
            (row.try_get(8)?, row.try_get(6)?),
        )
    })();
    decoded.map_err(|source| SnapshotError::deserialization(id.clone(), aggregate_type, source))
}

/// An event row, borrowed: columns `first..first + 6` are version, id, type, payload,
/// metadata and time (of which a payload-only row fills the version and the payload).
fn event_of<'r>(
    (id, aggregate_type): (&AggregateId, &str),
    row: &'r PgRow,
    (first, payload_only): (usize, bool),
) -> Result<StoredEvent<'r>, EventStoreError> {
    let version: i64 = row.try_get(first).unwrap_or(0);
    let decoded = (|| -> Result<StoredEvent<'r>, BoxError> {
        if payload_only {
            return Ok(StoredEvent::payload_only(
                u64::try_from(version)?,
                Payload::Text(row.try_get(first + 3)?),
            ));
        }
        let recorded_at: OffsetDateTime = row.try_get(first + 5)?;
        Ok(StoredEvent::new(
            u64::try_from(version)?,
            row.try_get(first + 1)?,
            row.try_get(first + 2)?,
            Payload::Text(row.try_get(first + 3)?),
            Payload::Text(row.try_get(first + 4)?),
            normalize_timestamp(recorded_at),
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

impl PostgresDatabase {
    /// The rows of one load statement.
    async fn load_rows(
        &self,
        statement: &SqlStr,
        (id, aggregate_type): (&AggregateId, &str),
        to: i64,
    ) -> Result<Vec<PgRow>, EventStoreError> {
        let id = id.text();
        Ok(self
            .retry(|pool| async move {
                sqlx::query(statement.clone())
                    .bind(aggregate_type)
                    .bind(&*id)
                    .bind(to)
                    .bind(FIRST_PAGE)
                    .fetch_all(&pool)
                    .await
            })
            .await
            .map_err(|e| pg_error(e, "load"))?)
    }

    /// Streams `from < version <= to` straight into the sink, row by row as they arrive;
    /// `last` follows the last event handed over.
    async fn stream_rest(
        &self,
        (key, payload_only): ((&AggregateId, &str), bool),
        (last, to): (&mut u64, i64),
        sink: &mut dyn LoadSink,
    ) -> Result<(), Read> {
        let statement = &self.sql().backend.load_rest[usize::from(payload_only)];
        let id = key.0.text();
        let mut rows = sqlx::query(statement.clone())
            .bind(key.1)
            .bind(&*id)
            .bind(to_i64(*last))
            .bind(to)
            .fetch(self.pool());
        while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
            let row = row.map_err(Read::Database)?;
            let event = event_of(key, &row, (0, payload_only)).map_err(Read::Event)?;
            *last = event.version;
            if sink.event(&event).is_break() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Hands the events of `rows` to the sink; returns the last version handed over, how many
    /// events there were, and whether the sink stopped.
    fn hand_rows(
        (key, payload_only): ((&AggregateId, &str), bool),
        rows: &[PgRow],
        sink: &mut dyn LoadSink,
    ) -> Result<(Option<u64>, usize, bool), EventStoreError> {
        let version = |row: &PgRow| row.try_get::<i64, _>(1).unwrap_or(0);
        let mut events: Vec<&PgRow> = rows.iter().filter(|row| part(row) == 1).collect();
        if !events.is_sorted_by_key(|row| version(row)) {
            events.sort_by_key(|row| version(row));
        }
        let mut last = None;
        for row in &events {
            let event = event_of(key, row, (1, payload_only))?;
            last = Some(event.version);
            if sink.event(&event).is_break() {
                return Ok((last, events.len(), true));
            }
        }
        Ok((last, events.len(), false))
    }
}

/// What a load row is: 0 the snapshot, 1 an event, 2 the head.
fn part(row: &PgRow) -> i32 {
    row.try_get(0).unwrap_or(-1)
}

/// The head of a load's rows (`part` 2).
fn head_of(rows: &[PgRow]) -> u64 {
    rows.iter()
        .find(|row| part(row) == 2)
        .and_then(|row| row.try_get::<i64, _>(1).ok())
        .map_or(0, |head| u64::try_from(head).unwrap_or(0))
}

#[async_trait]
impl Backend for PostgresDatabase {
    async fn load(
        &self,
        request: &LoadRequest<'_>,
        sink: &mut dyn LoadSink,
    ) -> Result<Loaded, EventStoreError> {
        validate::aggregate_type(request.aggregate_type)?;
        let key = (request.aggregate_id, request.aggregate_type);
        let to = to_i64(request.up_to.unwrap_or(u64::MAX));
        let sql = &self.sql().backend;
        let fields = usize::from(request.payload_only);
        let statement = match (request.through_snapshot, request.up_to) {
            (false, _) => &sql.load_replay[fields],
            (true, None) => &sql.load_latest[fields],
            (true, Some(_)) => &sql.load_at[fields],
        };
        let mut rows = self.load_rows(statement, key, to).await?;
        if request.through_snapshot {
            let found = rows
                .iter()
                .find(|row| part(row) == 0)
                .map(|row| snapshot_of(key.0, key.1, row));
            let from = found
                .as_ref()
                .and_then(|found| found.as_ref().ok())
                .map_or(0, |snapshot| snapshot.version);
            let read = match found {
                Some(Ok(snapshot)) => SnapshotRead::Found(snapshot),
                Some(Err(error)) => SnapshotRead::Failed(error),
                None => SnapshotRead::Missing,
            };
            let taken = sink.snapshot(read);
            if !taken && from > 0 {
                // The sink replays the whole stream instead: read it from the start.
                rows = self.load_rows(&sql.load_replay[fields], key, to).await?;
            }
        }
        let head = head_of(&rows);
        let (mut last, count, stopped) = Self::hand_rows((key, request.payload_only), &rows, sink)?;
        drop(rows);
        if stopped {
            return Ok(Loaded::new(last.unwrap_or(0)));
        }
        if let Some(mut from) = last.filter(|_| i64::try_from(count) == Ok(FIRST_PAGE)) {
            // The rest streams; after a lost connection it resumes after the last event.
            let mut attempt = 1;
            loop {
                match self
                    .stream_rest((key, request.payload_only), (&mut from, to), sink)
                    .await
                {
                    Err(Read::Database(e)) if attempt < self.attempts() && is_disconnect(&e) => {
                        attempt += 1;
                    }
                    Err(Read::Database(e)) => return Err(pg_error(e, "load").into()),
                    Err(Read::Event(e)) => return Err(e),
                    Ok(()) => break,
                }
            }
            last = Some(from);
        }
        Ok(last.map_or_else(|| Loaded::at_head(head, request.up_to), Loaded::new))
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Committed, EventStoreError> {
        let Commit {
            aggregate_type,
            aggregate_id,
            expected_version,
            events,
            snapshot,
            ..
        } = commit;
        let events_store = PostgresDatabase::event_store(self);
        let snapshot = match snapshot.map(|s| validate::snapshot(&s).map(|()| s)) {
            Some(Ok(snapshot)) if !events.is_empty() => snapshot,
            refused => {
                // Nothing to ride on, or nothing valid to write: the append alone.
                let version = events_store
                    .append(
                        &aggregate_id,
                        &aggregate_type,
                        expected_version,
                        events.into_owned(),
                    )
                    .await?;
                let written = match refused {
                    Some(Err(error)) => SnapshotWrite::Failed(error.into()),
                    Some(Ok(snapshot)) => match PostgresDatabase::snapshot_store(self)
                        .save_snapshot(&snapshot)
                        .await
                    {
                        Ok(()) => SnapshotWrite::Written,
                        Err(error) => SnapshotWrite::Failed(error),
                    },
                    None => SnapshotWrite::NotAsked,
                };
                return Ok(Committed::new(version, written));
            }
        };
        validate::append(&aggregate_type, expected_version, &events)?;
        let appended = Appended::new(&events);
        let row = Encoded::new(&snapshot);
        let result = if self.keep > 1 {
            self.commit_with_history((&snapshot, &row), expected_version, &appended)
                .await
        } else {
            self.commit_latest((&snapshot, &row), expected_version, &appended)
                .await
        };
        let stream = (&aggregate_id, aggregate_type.as_str(), expected_version);
        let settle = |result| events_store.settle(stream, (appended.count, appended.first), result);
        match result {
            Ok((outcome, written)) => Ok(Committed::new(settle(Ok(outcome)).await?, written)),
            // The snapshot part (or something else that is no conflict) failed the statement:
            // the events go in alone, and the snapshot is reported failed.
            Err(error) if !is_unique_violation(&error) && !is_disconnect(&error) => {
                let version = events_store
                    .append(
                        &aggregate_id,
                        &aggregate_type,
                        expected_version,
                        events.into_owned(),
                    )
                    .await?;
                let failed = SnapshotError::from(pg_error(error, "snapshot in the commit"));
                Ok(Committed::new(version, SnapshotWrite::Failed(failed)))
            }
            // A lost connection: if the events are in place, they were ours (the snapshot's
            // fate is unknown and reported failed); otherwise the error stands.
            Err(error) if is_disconnect(&error) => {
                let head = events_store
                    .current_version(&aggregate_id, &aggregate_type)
                    .await?;
                if head < expected_version + appended.count {
                    return Err(pg_error(error, "commit").into());
                }
                let version = settle(Ok((to_i64(head), 0))).await?;
                let unknown = SnapshotError::from(pg_error(error, "snapshot in the commit"));
                Ok(Committed::new(version, SnapshotWrite::Failed(unknown)))
            }
            Err(error) => Ok(Committed::new(
                settle(Err(error)).await?,
                SnapshotWrite::Written,
            )),
        }
    }

    fn event_store(&self) -> Arc<DynEventStore> {
        Arc::new(PostgresDatabase::event_store(self))
    }

    fn snapshot_store(&self) -> Option<Arc<DynSnapshotStore>> {
        Some(Arc::new(PostgresDatabase::snapshot_store(self)))
    }

    fn name(&self) -> &'static str {
        "postgres"
    }
}

/// The events of a commit as the append binds them.
struct Appended {
    count: u64,
    first: Uuid,
    ids: Vec<Uuid>,
    types: Vec<String>,
    payloads: Vec<Jsonb>,
    metadata: Vec<Jsonb>,
}

impl Appended {
    fn new(events: &[NewEvent]) -> Self {
        Self {
            count: events.len() as u64,
            first: events.first().map_or(Uuid::nil(), |e| e.event_id),
            ids: events.iter().map(|e| e.event_id).collect(),
            types: events.iter().map(|e| e.event_type.clone()).collect(),
            payloads: events.iter().map(|e| Jsonb::new(&e.payload)).collect(),
            metadata: events.iter().map(|e| Jsonb::new(&e.metadata)).collect(),
        }
    }

    fn bind<'q>(
        &'q self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, (i64, i64), sqlx::postgres::PgArguments>,
        (aggregate_type, aggregate_id, expected_version): (&'q str, &'q str, u64),
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, (i64, i64), sqlx::postgres::PgArguments> {
        query
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(to_i64(expected_version))
            .bind(&self.ids)
            .bind(&self.types)
            .bind(&self.payloads)
            .bind(&self.metadata)
    }
}

impl PostgresDatabase {
    /// The append and the snapshot in one statement, tried again on a lost connection (a
    /// retry after a lost reply finds its own events and settles as done).
    async fn commit_latest(
        &self,
        (snapshot, row): (&Snapshot, &Encoded),
        expected_version: u64,
        appended: &Appended,
    ) -> Result<((i64, i64), SnapshotWrite), sqlx::Error> {
        let statement = &self.sql().backend.commit_latest;
        let id = snapshot.aggregate_id.text();
        let stream = (snapshot.aggregate_type.as_str(), &*id, expected_version);
        let outcome = self
            .retry(|pool| async move {
                appended
                    .bind(sqlx::query_as(statement.clone()), stream)
                    .bind(row.version)
                    .bind(row.schema_version)
                    .bind(row.state.clone())
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .fetch_one(&pool)
                    .await
            })
            .await?;
        Ok((outcome, SnapshotWrite::Written))
    }

    /// The append, then the snapshot with its history under a savepoint, in one transaction:
    /// a failing snapshot rolls back to the savepoint and the events still commit.
    async fn commit_with_history(
        &self,
        (snapshot, row): (&Snapshot, &Encoded),
        expected_version: u64,
        appended: &Appended,
    ) -> Result<((i64, i64), SnapshotWrite), sqlx::Error> {
        let id = snapshot.aggregate_id.text();
        let stream = (snapshot.aggregate_type.as_str(), &*id, expected_version);
        let mut connection = self.pool().acquire().await?;
        let mut tx = connection.begin().await?;
        let outcome: (i64, i64) = appended
            .bind(sqlx::query_as(self.sql().events.append.clone()), stream)
            .fetch_one(&mut *tx)
            .await?;
        if outcome.1 == 0 {
            tx.rollback().await?;
            return Ok((outcome, SnapshotWrite::NotAsked));
        }
        let mut savepoint = tx.begin().await?;
        let written = match write_history(self, &mut savepoint, snapshot, row, self.keep).await {
            Ok(()) => {
                savepoint.commit().await?;
                SnapshotWrite::Written
            }
            Err(error) => {
                savepoint.rollback().await?;
                SnapshotWrite::Failed(pg_error(error, "snapshot in the commit").into())
            }
        };
        tx.commit().await?;
        Ok((outcome, written))
    }
}
