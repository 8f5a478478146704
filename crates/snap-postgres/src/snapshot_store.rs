use serde_json::Value;
use snap_core::{
    AggregateId, BackendError, BoxError, Snapshot, SnapshotError, SnapshotStore, async_trait,
    normalize_timestamp, validate,
};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Acquire, Row};

use time::OffsetDateTime;

use crate::PostgresDatabase;
use crate::error::pg_error;
use crate::jsonb::Jsonb;

/// A [`SnapshotStore`] on PostgreSQL.
///
/// Keeps the latest snapshot per aggregate unless built with
/// [`keep_history`](Self::keep_history). Clones share the pool.
#[derive(Debug, Clone)]
pub struct PostgresSnapshotStore {
    database: PostgresDatabase,
    keep: usize,
}

impl PostgresSnapshotStore {
    pub(crate) fn from_database(database: PostgresDatabase) -> Self {
        Self { database, keep: 1 }
    }

    /// A store on an existing pool, tables in the `public` schema (not migrated here).
    pub fn new(pool: sqlx::PgPool) -> Self {
        PostgresDatabase::new(pool).snapshot_store()
    }

    /// Connects to a `postgres://` URL and migrates the `public` schema.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        Ok(PostgresDatabase::connect(url).await?.snapshot_store())
    }

    /// Keeps the `k` highest versions per aggregate, for
    /// [`get_snapshot_at`](SnapshotStore::get_snapshot_at). The latest is always kept, so `0`
    /// counts as `1`.
    #[must_use]
    pub fn keep_history(mut self, k: usize) -> Self {
        self.keep = k.max(1);
        self
    }

    /// The database this store writes to.
    pub fn database(&self) -> &PostgresDatabase {
        &self.database
    }

    async fn get(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        max_version: Option<u64>,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let id = aggregate_id.text();
        let sql = &self.database.sql().snapshots;
        let statement = if max_version.is_some() {
            &sql.get_at
        } else {
            &sql.get_latest
        };
        let row = self
            .database
            .retry(|pool| async move {
                let mut query = sqlx::query(statement.clone())
                    .bind(aggregate_type)
                    .bind(&*id);
                if let Some(max) = max_version {
                    query = query.bind(to_i64(max));
                }
                query.fetch_optional(&pool).await
            })
            .await
            .map_err(|e| pg_error(e, "get_snapshot"))?;
        row.map(|row| decode(aggregate_id, aggregate_type, &row))
            .transpose()
    }

    /// With history, in a transaction of its own; see [`write_history`].
    async fn save_with_history(
        &self,
        snapshot: &Snapshot,
        row: &Encoded,
    ) -> Result<(), sqlx::Error> {
        let mut connection = self.database.pool().acquire().await?;
        let mut tx = connection.begin().await?;
        // A cache of the events, as in the one-statement save: no wait for the WAL flush.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        write_history(&self.database, &mut tx, snapshot, row, self.keep).await?;
        tx.commit().await
    }
}

/// Saves `snapshot` keeping `keep` versions, on `connection`, inside a transaction the caller
/// commits: under a per-aggregate advisory lock, statement by statement (each sees what the
/// ones before it wrote), give up if a higher version is stored anywhere, move the current
/// latest into the history, drop history rows the new version replaces, write the new latest,
/// and trim the history to `keep - 1` rows.
pub(crate) async fn write_history(
    database: &PostgresDatabase,
    connection: &mut sqlx::PgConnection,
    snapshot: &Snapshot,
    row: &Encoded,
    keep: usize,
) -> Result<(), sqlx::Error> {
    let sql = &database.sql().snapshots;
    let (ty, id) = (&snapshot.aggregate_type, row.id.as_str());
    sqlx::query(sql.lock_aggregate.clone())
        .bind(ty)
        .bind(id)
        .execute(&mut *connection)
        .await?;
    let highest: Option<i64> = sqlx::query_scalar(sql.highest_version.clone())
        .bind(ty)
        .bind(id)
        .fetch_one(&mut *connection)
        .await?;
    if highest.is_some_and(|highest| highest > row.version) {
        return Ok(());
    }
    for statement in [&sql.move_to_history, &sql.drop_history_from] {
        sqlx::query(statement.clone())
            .bind(ty)
            .bind(id)
            .bind(row.version)
            .execute(&mut *connection)
            .await?;
    }
    row.bind(sqlx::query(sql.upsert_latest.clone()), snapshot)
        .execute(&mut *connection)
        .await?;
    sqlx::query(sql.trim_history.clone())
        .bind(ty)
        .bind(id)
        .bind(i64::try_from(keep.saturating_sub(1)).unwrap_or(i64::MAX))
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// A snapshot's columns, encoded once and bound on every try.
pub(crate) struct Encoded {
    pub(crate) version: i64,
    pub(crate) schema_version: i64,
    pub(crate) state: Jsonb,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
    pub(crate) id: String,
}

impl Encoded {
    pub(crate) fn new(snapshot: &Snapshot) -> Self {
        Self {
            version: to_i64(snapshot.version),
            schema_version: i64::from(snapshot.schema_version),
            state: Jsonb::new(&snapshot.state),
            created_at: normalize_timestamp(snapshot.created_at),
            updated_at: normalize_timestamp(snapshot.updated_at),
            id: snapshot.aggregate_id.to_string(),
        }
    }

    pub(crate) fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        snapshot: &'q Snapshot,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&snapshot.aggregate_type)
            .bind(self.id.as_str())
            .bind(self.version)
            .bind(self.schema_version)
            .bind(self.state.clone())
            .bind(self.created_at)
            .bind(self.updated_at)
    }
}

fn to_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

pub(crate) fn decode(
    id: &AggregateId,
    aggregate_type: &str,
    row: &PgRow,
) -> Result<Snapshot, SnapshotError> {
    let decoded = (|| -> Result<Snapshot, BoxError> {
        let Json(state): Json<Value> = row.try_get(2)?;
        assemble(
            (id, aggregate_type),
            (row.try_get(0)?, row.try_get(1)?),
            state,
            (row.try_get(3)?, row.try_get(4)?),
        )
    })();
    decoded.map_err(|source| SnapshotError::deserialization(id.clone(), aggregate_type, source))
}

/// A snapshot from its decoded columns: `(version, schema_version)`, the state, which must be a
/// JSON object, and its `(created_at, updated_at)`.
pub(crate) fn assemble(
    (id, aggregate_type): (&AggregateId, &str),
    (version, schema_version): (i64, i64),
    state: Value,
    (created_at, updated_at): (OffsetDateTime, OffsetDateTime),
) -> Result<Snapshot, BoxError> {
    if !state.is_object() {
        return Err(format!(
            "state is a JSON {}, not an object",
            validate::json_kind(&state)
        )
        .into());
    }
    Ok(Snapshot::new(
        id.clone(),
        aggregate_type,
        u64::try_from(version)?,
        state,
        u32::try_from(schema_version)?,
    )
    .with_created_at(created_at)
    .with_updated_at(updated_at))
}

#[async_trait]
impl SnapshotStore for PostgresSnapshotStore {
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        validate::snapshot(snapshot)?;
        let row = Encoded::new(snapshot);
        let row = &row;
        if self.keep > 1 {
            // The transaction commits whole or not at all, so trying it again is safe.
            return Ok(self
                .database
                .retry(|_| async move { self.save_with_history(snapshot, row).await })
                .await
                .map_err(|e| pg_error(e, "save_snapshot"))?);
        }
        // One statement: the row lock taken by ON CONFLICT orders concurrent savers, the WHERE
        // clauses keep the higher version (also against history left by a store that kept
        // more), and a save that lands clears that history. Repeating it is harmless.
        let sql = &self.database.sql().snapshots;
        self.database
            .retry(|pool| async move {
                row.bind(sqlx::query(sql.save_latest.clone()), snapshot)
                    .execute(&pool)
                    .await
            })
            .await
            .map_err(|e| pg_error(e, "save_snapshot"))?;
        Ok(())
    }

    async fn get_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.get(aggregate_id, aggregate_type, None).await
    }

    async fn get_snapshot_at(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        max_version: u64,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.get(aggregate_id, aggregate_type, Some(max_version))
            .await
    }

    async fn delete_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let id = aggregate_id.text();
        let sql = &self.database.sql().snapshots;
        // A retry after a lost reply finds nothing left and reports false; the rows are gone
        // either way.
        let deleted: i64 = self
            .database
            .retry(|pool| async move {
                sqlx::query_scalar(sql.delete.clone())
                    .bind(aggregate_type)
                    .bind(&*id)
                    .fetch_one(&pool)
                    .await
            })
            .await
            .map_err(|e| pg_error(e, "delete_snapshot"))?;
        Ok(deleted > 0)
    }

    async fn snapshot_exists(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let id = aggregate_id.text();
        let sql = &self.database.sql().snapshots;
        Ok(self
            .database
            .retry(|pool| async move {
                sqlx::query_scalar(sql.exists.clone())
                    .bind(aggregate_type)
                    .bind(&*id)
                    .fetch_one(&pool)
                    .await
            })
            .await
            .map_err(|e| pg_error(e, "snapshot_exists"))?)
    }

    async fn delete_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let sql = &self.database.sql().snapshots;
        let below = schema_version_below.map(i64::from);
        // A retry after a lost commit reply finds nothing left to delete and reports fewer
        // rows than were removed; the rows are gone either way.
        let deleted: i64 = self
            .database
            .retry(|pool| async move {
                let mut tx = pool.begin().await?;
                let deleted = sqlx::query_scalar(sql.delete_by_type.clone())
                    .bind(aggregate_type)
                    .bind(below)
                    .fetch_one(&mut *tx)
                    .await?;
                // A schema bound may remove an aggregate's latest snapshot and keep older ones
                // of a newer schema: the newest of those becomes the latest.
                if below.is_some() {
                    sqlx::query(sql.promote_history.clone())
                        .bind(aggregate_type)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(deleted)
            })
            .await
            .map_err(|e| pg_error(e, "delete_snapshots_by_type"))?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}
