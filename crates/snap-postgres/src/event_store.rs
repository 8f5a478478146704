use serde_json::Value;
use snap_core::{
    BackendError, BoxError, EventStore, EventStoreError, NewEvent, RecordedEvent, async_trait,
    normalize_timestamp, validate,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresDatabase;
use crate::error::{is_unique_violation, pg_error};

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

    async fn head(&self, aggregate_id: Uuid, aggregate_type: &str) -> Result<u64, sqlx::Error> {
        let sql = &self.database.sql().events;
        let version: i64 = self
            .database
            .retry(|pool| async move {
                sqlx::query_scalar(sql.current_version.clone())
                    .bind(aggregate_type)
                    .bind(aggregate_id)
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
        aggregate_id: Uuid,
        aggregate_type: &str,
        version: u64,
        event_id: Uuid,
    ) -> Result<bool, sqlx::Error> {
        let sql = &self.database.sql().events;
        let found: Option<Uuid> = self
            .database
            .retry(|pool| async move {
                sqlx::query_scalar(sql.event_id_at.clone())
                    .bind(aggregate_type)
                    .bind(aggregate_id)
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

fn decode(id: Uuid, aggregate_type: &str, row: &PgRow) -> Result<RecordedEvent, EventStoreError> {
    let version: i64 = row.try_get(0).unwrap_or(0);
    let decoded = (|| -> Result<RecordedEvent, BoxError> {
        let Json(payload): Json<Value> = row.try_get(3)?;
        let Json(metadata): Json<Value> = row.try_get(4)?;
        let recorded_at: OffsetDateTime = row.try_get(5)?;
        Ok(RecordedEvent {
            event_id: row.try_get(1)?,
            aggregate_id: id,
            aggregate_type: aggregate_type.to_owned(),
            version: u64::try_from(version)?,
            event_type: row.try_get(2)?,
            payload,
            metadata,
            recorded_at: normalize_timestamp(recorded_at),
        })
    })();
    decoded.map_err(|source| EventStoreError::Deserialization {
        aggregate_id: id,
        aggregate_type: aggregate_type.to_owned(),
        version: u64::try_from(version).unwrap_or(0),
        source,
    })
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<u64, EventStoreError> {
        validate::append(aggregate_type, expected_version, &events)?;
        let conflict = |actual| EventStoreError::Concurrency {
            aggregate_id,
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
        let payloads: Vec<Json<&Value>> = events.iter().map(|e| Json(&e.payload)).collect();
        let metadata: Vec<Json<&Value>> = events.iter().map(|e| Json(&e.metadata)).collect();
        let (ids, types, payloads, metadata) = (&ids, &types, &payloads, &metadata);
        let sql = &self.database.sql().events;
        let result = self
            .database
            .retry(|pool| async move {
                sqlx::query_as::<_, (i64, i64)>(sql.append.clone())
                    .bind(aggregate_type)
                    .bind(aggregate_id)
                    .bind(to_i64(expected_version))
                    .bind(ids)
                    .bind(types)
                    .bind(payloads)
                    .bind(metadata)
                    .fetch_one(&pool)
                    .await
            })
            .await;
        match result {
            Ok((_, inserted)) if inserted > 0 => Ok(expected_version + count),
            Ok((head, _)) => {
                let head = u64::try_from(head).unwrap_or(0);
                // A lost reply followed by a retry lands here: if our first event is in place,
                // the earlier try committed.
                if head == expected_version + count
                    && self
                        .holds(aggregate_id, aggregate_type, expected_version + 1, first)
                        .await
                        .map_err(|e| pg_error(e, "append"))?
                {
                    return Ok(head);
                }
                Err(conflict(head))
            }
            Err(e) if is_unique_violation(&e) => {
                let head = self
                    .head(aggregate_id, aggregate_type)
                    .await
                    .map_err(|e| pg_error(e, "append"))?;
                Err(conflict(head))
            }
            Err(e) => Err(pg_error(e, "append").into()),
        }
    }

    async fn load(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
        from_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        let (from, to) = (to_i64(from_version), to_i64(to_version.unwrap_or(u64::MAX)));
        if from >= to {
            return Ok(Vec::new());
        }
        let sql = &self.database.sql().events;
        let rows = self
            .database
            .retry(|pool| async move {
                sqlx::query(sql.load.clone())
                    .bind(aggregate_type)
                    .bind(aggregate_id)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&pool)
                    .await
            })
            .await
            .map_err(|e| pg_error(e, "load"))?;
        rows.iter()
            .map(|row| decode(aggregate_id, aggregate_type, row))
            .collect()
    }

    async fn current_version(
        &self,
        aggregate_id: Uuid,
        aggregate_type: &str,
    ) -> Result<u64, EventStoreError> {
        validate::aggregate_type(aggregate_type)?;
        Ok(self
            .head(aggregate_id, aggregate_type)
            .await
            .map_err(|e| pg_error(e, "current_version"))?)
    }
}
