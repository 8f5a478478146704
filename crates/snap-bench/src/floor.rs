//! The floors: what the database underneath does for the same work, by bare statements on a
//! dedicated connection, measured in the same run as the stores.

use snap_es::AggregateId;
use uuid::Uuid;

use crate::aggregate::BenchEvent;
use crate::scenario::err;

/// A bare primary-key SELECT of a snapshot row on a dedicated connection: the floor.
pub(crate) enum Floor {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgConnection, String),
}

impl Floor {
    pub(crate) async fn get(&mut self, id: &AggregateId) -> Result<i64, String> {
        match self {
            Self::Sqlite(connection) => {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT version, schema_version, state, created_at, updated_at FROM snapshots
                         WHERE aggregate_type = ?1 AND aggregate_id = ?2
                         ORDER BY version DESC LIMIT 1",
                    )
                    .map_err(|e| e.to_string())?;
                let (version, _, _, _, _) = statement
                    .query_row(rusqlite::params!["BenchAccount", &*id.text()], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, i64>(3)?,
                            row.get::<_, i64>(4)?,
                        ))
                    })
                    .map_err(|e| e.to_string())?;
                Ok(version)
            }
            Self::Postgres(connection, sql) => {
                let (version, _, _, _, _): (
                    i64,
                    i64,
                    serde_json::Value,
                    sqlx::types::time::OffsetDateTime,
                    sqlx::types::time::OffsetDateTime,
                ) = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                    .bind("BenchAccount")
                    .bind(&*id.text())
                    .fetch_one(&mut *connection)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(version)
            }
        }
    }
}

impl Floor {
    /// The events of `id` after `after`, by a bare prepared SELECT on the floor's connection,
    /// decoded as the stores decode them (JSON into values); returns how many.
    pub(crate) async fn tail(&mut self, id: &AggregateId, after: u64) -> Result<usize, String> {
        let after = i64::try_from(after).map_err(err)?;
        match self {
            Self::Sqlite(connection) => {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT version, event_id, event_type, payload, metadata, recorded_at
                         FROM events WHERE aggregate_type = ?1 AND aggregate_id = ?2
                         AND version > ?3 ORDER BY version",
                    )
                    .map_err(err)?;
                let rows = statement
                    .query_map(
                        rusqlite::params!["BenchAccount", &*id.text(), after],
                        |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, String>(2)?,
                                row.get::<_, String>(3)?,
                                row.get::<_, String>(4)?,
                                row.get::<_, i64>(5)?,
                            ))
                        },
                    )
                    .map_err(err)?;
                let mut count = 0;
                for row in rows {
                    let (_, _, _, payload, metadata, _) = row.map_err(err)?;
                    let _: serde_json::Value = serde_json::from_str(&payload).map_err(err)?;
                    let _: serde_json::Value = serde_json::from_str(&metadata).map_err(err)?;
                    count += 1;
                }
                Ok(count)
            }
            Self::Postgres(connection, _) => {
                type EventRow = (
                    i64,
                    Uuid,
                    String,
                    sqlx::types::Json<serde_json::Value>,
                    sqlx::types::Json<serde_json::Value>,
                    sqlx::types::time::OffsetDateTime,
                );
                let rows: Vec<EventRow> = sqlx::query_as(
                    "SELECT version, event_id, event_type, payload, metadata, recorded_at
                     FROM snap_bench.events WHERE aggregate_type = $1 AND aggregate_id = $2
                     AND version > $3 ORDER BY version",
                )
                .bind("BenchAccount")
                .bind(&*id.text())
                .bind(after)
                .fetch_all(&mut *connection)
                .await
                .map_err(err)?;
                Ok(rows.len())
            }
        }
    }
}

impl Floor {
    /// Every event of `id` by a bare SELECT, each payload decoded straight into the event
    /// type: the least a full replay must do. Returns how many.
    pub(crate) async fn decode(&mut self, id: &AggregateId) -> Result<u64, String> {
        match self {
            Self::Sqlite(connection) => {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT payload FROM events WHERE aggregate_type = ?1 AND aggregate_id = ?2
                         ORDER BY version",
                    )
                    .map_err(err)?;
                let mut rows = statement
                    .query(rusqlite::params!["BenchAccount", &*id.text()])
                    .map_err(err)?;
                let mut count = 0;
                while let Some(row) = rows.next().map_err(err)? {
                    let text = row.get_ref(0).map_err(err)?.as_str().map_err(err)?;
                    let _: BenchEvent = serde_json::from_str(text).map_err(err)?;
                    count += 1;
                }
                Ok(count)
            }
            Self::Postgres(connection, _) => {
                use sqlx::Row as _;
                let mut rows = sqlx::query(
                    "SELECT payload::text FROM snap_bench.events
                     WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY version",
                )
                .bind("BenchAccount")
                .bind(id.to_string())
                .fetch(&mut *connection);
                let mut count = 0;
                while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
                    let row = row.map_err(err)?;
                    let text: &str = row.try_get(0).map_err(err)?;
                    let _: BenchEvent = serde_json::from_str(text).map_err(err)?;
                    count += 1;
                }
                Ok(count)
            }
        }
    }

    /// Brings the database to the same starting point before a timed write: on SQLite the
    /// write-ahead log is checkpointed and emptied, so no write pays for the pages of the one
    /// before it (SQLite checkpoints inside whichever commit crosses its threshold).
    pub(crate) fn settle(&mut self) -> Result<(), String> {
        match self {
            Self::Sqlite(connection) => connection
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(err),
            Self::Postgres(..) => Ok(()),
        }
    }

    /// Inserts `events` as a new stream `id` by the driver alone: one transaction of prepared
    /// INSERTs on SQLite, one `UNNEST` INSERT on PostgreSQL. The least a save of them costs.
    pub(crate) async fn insert(
        &mut self,
        id: &AggregateId,
        events: &[snap_es::NewEvent],
    ) -> Result<(), String> {
        match self {
            Self::Sqlite(connection) => {
                let tx = connection.transaction().map_err(err)?;
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO events (aggregate_type, aggregate_id, version, event_id,
                                 event_type, payload, metadata, recorded_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        )
                        .map_err(err)?;
                    let id = id.text();
                    for (event, version) in events.iter().zip(1_i64..) {
                        insert
                            .execute(rusqlite::params![
                                "BenchAccount",
                                &*id,
                                version,
                                event.event_id.hyphenated().to_string(),
                                event.event_type,
                                serde_json::to_string(&event.payload).map_err(err)?,
                                serde_json::to_string(&event.metadata).map_err(err)?,
                                0_i64,
                            ])
                            .map_err(err)?;
                    }
                }
                tx.commit().map_err(err)
            }
            Self::Postgres(connection, _) => {
                let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
                let payloads: Vec<sqlx::types::Json<&serde_json::Value>> = events
                    .iter()
                    .map(|e| sqlx::types::Json(&e.payload))
                    .collect();
                let metadata: Vec<sqlx::types::Json<&serde_json::Value>> = events
                    .iter()
                    .map(|e| sqlx::types::Json(&e.metadata))
                    .collect();
                sqlx::query(
                    "INSERT INTO snap_bench.events
                         (aggregate_type, aggregate_id, version, event_id, event_type, payload,
                          metadata)
                     SELECT 'BenchAccount', $1, e.ord, e.event_id, e.event_type, e.payload,
                            e.metadata
                     FROM UNNEST($2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[])
                         WITH ORDINALITY AS e(event_id, event_type, payload, metadata, ord)",
                )
                .bind(id.to_string())
                .bind(ids)
                .bind(types)
                .bind(payloads)
                .bind(metadata)
                .execute(&mut *connection)
                .await
                .map_err(err)?;
                Ok(())
            }
        }
    }
}
