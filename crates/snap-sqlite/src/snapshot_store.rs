use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use snap_core::{
    AggregateId, BoxError, Snapshot, SnapshotError, SnapshotStore, async_trait,
    normalize_timestamp, validate,
};

use crate::SqliteDatabase;
use crate::codec::{
    json_to_sql, object_from_sql, schema_from_sql, timestamp_from_sql, timestamp_to_sql,
    version_from_sql, version_to_sql,
};
use crate::error::sqlite_error;

pub(crate) const GET_AT: &str =
    "SELECT version, schema_version, state, created_at, updated_at FROM snapshots
     WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND version <= ?3
     ORDER BY version DESC LIMIT 1";

/// A [`SnapshotStore`] on a SQLite database.
///
/// Keeps the latest snapshot per aggregate unless built with
/// [`keep_history`](Self::keep_history). Clones share the database.
#[derive(Debug, Clone)]
pub struct SqliteSnapshotStore {
    database: SqliteDatabase,
    keep: usize,
}

impl SqliteSnapshotStore {
    pub(crate) fn new(database: SqliteDatabase) -> Self {
        Self { database, keep: 1 }
    }

    /// Opens (creating and migrating if needed) a database file and returns its snapshot
    /// store.
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, snap_core::BackendError> {
        Ok(SqliteDatabase::open(path).await?.snapshot_store())
    }

    /// A snapshot store on a private in-memory database.
    pub async fn open_in_memory() -> Result<Self, snap_core::BackendError> {
        Ok(SqliteDatabase::open_in_memory().await?.snapshot_store())
    }

    /// Keeps the `k` highest versions per aggregate, for
    /// [`get_snapshot_at`](SnapshotStore::get_snapshot_at). The latest is always kept, so `0`
    /// counts as `1`.
    #[must_use]
    pub fn keep_history(mut self, k: usize) -> Self {
        self.keep = k.max(1);
        self
    }

    /// The highest retained snapshot at or below `max_version`.
    async fn get_at(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        max_version: u64,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let aggregate_type = aggregate_type.to_owned();
        let aggregate_id = aggregate_id.clone();
        let max_version = version_to_sql(max_version);
        self.run(move |connection| {
            query_one(
                connection,
                GET_AT,
                &aggregate_id,
                aggregate_type,
                max_version,
            )
        })
        .await
    }

    /// The database this store writes to.
    pub fn database(&self) -> &SqliteDatabase {
        &self.database
    }

    async fn run<R, F>(&self, f: F) -> Result<R, SnapshotError>
    where
        F: FnOnce(&mut Connection) -> Result<R, SnapshotError> + Send + 'static,
        R: Send + 'static,
    {
        self.database.run(f).await?
    }
}

/// A snapshot save, checked and encoded on the async side, to run inside a write transaction.
pub(crate) struct SnapshotWrite {
    aggregate_type: String,
    id: String,
    version: i64,
    schema_version: i64,
    state: String,
    created_at: i64,
    updated_at: i64,
    keep: i64,
}

impl SnapshotWrite {
    /// Checks the snapshot and renders its state; `keep` versions are retained.
    pub(crate) fn new(snapshot: &Snapshot, keep: usize) -> Result<Self, SnapshotError> {
        validate::snapshot(snapshot)?;
        Ok(Self {
            aggregate_type: snapshot.aggregate_type.clone(),
            id: snapshot.aggregate_id.to_string(),
            version: version_to_sql(snapshot.version),
            schema_version: i64::from(snapshot.schema_version),
            state: json_to_sql(&snapshot.state),
            created_at: timestamp_to_sql(normalize_timestamp(snapshot.created_at)),
            updated_at: timestamp_to_sql(normalize_timestamp(snapshot.updated_at)),
            keep: i64::try_from(keep).unwrap_or(i64::MAX),
        })
    }

    /// Upserts the snapshot unless a higher version is stored, then trims the history, on
    /// `tx`, which holds the write lock.
    pub(crate) fn upsert(&self, tx: &Connection) -> Result<(), (rusqlite::Error, &'static str)> {
        // The usual case when only the latest is kept: the stored snapshot is older, and its
        // row is rewritten in place (one row and the indexes on the changed columns) rather
        // than a new row inserted and the old one deleted (every index twice). The row keeps
        // its `created_at`: when the aggregate was first snapshotted.
        let replaced = self.keep == 1
            && tx
                .prepare_cached(
                    "UPDATE snapshots
                     SET version = ?3, schema_version = ?4, state = ?5, updated_at = ?7
                     WHERE rowid = (SELECT rowid FROM snapshots
                                    WHERE aggregate_type = ?1 AND aggregate_id = ?2
                                    ORDER BY version DESC LIMIT 1)
                       AND version < ?3",
                )
                .and_then(|mut s| s.execute(self.params()))
                .map_err(|e| (e, "save_snapshot"))?
                == 1;
        if !replaced {
            self.insert(tx)?;
        }
        tx.prepare_cached(
            "DELETE FROM snapshots
             WHERE aggregate_type = ?1 AND aggregate_id = ?2
               AND version <= (SELECT version FROM snapshots
                               WHERE aggregate_type = ?1 AND aggregate_id = ?2
                               ORDER BY version DESC LIMIT 1 OFFSET ?3)",
        )
        .and_then(|mut s| s.execute(params![self.aggregate_type, self.id, self.keep]))
        .map_err(|e| (e, "trim snapshot history"))?;
        Ok(())
    }

    fn params(&self) -> [&dyn rusqlite::ToSql; 7] {
        [
            &self.aggregate_type,
            &self.id,
            &self.version,
            &self.schema_version,
            &self.state,
            &self.created_at,
            &self.updated_at,
        ]
    }

    /// Inserts the snapshot unless a higher version is stored; the same version is replaced.
    /// The new row takes the `created_at` of the aggregate's latest snapshot, if any.
    fn insert(&self, tx: &Connection) -> Result<(), (rusqlite::Error, &'static str)> {
        tx.prepare_cached(
            "INSERT INTO snapshots
                 (aggregate_type, aggregate_id, version, schema_version, state, created_at, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5,
                    COALESCE((SELECT created_at FROM snapshots
                              WHERE aggregate_type = ?1 AND aggregate_id = ?2
                              ORDER BY version DESC LIMIT 1), ?6),
                    ?7
             WHERE NOT EXISTS (SELECT 1 FROM snapshots
                               WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND version > ?3)
             ON CONFLICT (aggregate_type, aggregate_id, version) DO UPDATE SET
                 schema_version = excluded.schema_version,
                 state = excluded.state,
                 updated_at = excluded.updated_at",
        )
        .and_then(|mut s| s.execute(self.params()))
        .map_err(|e| (e, "save_snapshot"))?;
        Ok(())
    }
}

fn decode(
    id: &AggregateId,
    aggregate_type: String,
    row: &Row<'_>,
) -> Result<Snapshot, SnapshotError> {
    let fields = (|| -> Result<_, BoxError> {
        Ok((
            version_from_sql(row.get_ref(0)?)?,
            schema_from_sql(row.get_ref(1)?)?,
            object_from_sql(row.get_ref(2)?)?,
            timestamp_from_sql(row.get_ref(3)?)?,
            timestamp_from_sql(row.get_ref(4)?)?,
        ))
    })();
    match fields {
        Ok((version, schema_version, state, created_at, updated_at)) => {
            Ok(
                Snapshot::new(id.clone(), aggregate_type, version, state, schema_version)
                    .with_created_at(created_at)
                    .with_updated_at(updated_at),
            )
        }
        Err(source) => Err(SnapshotError::deserialization(
            id.clone(),
            aggregate_type,
            source,
        )),
    }
}

pub(crate) fn query_one(
    connection: &Connection,
    sql: &str,
    id: &AggregateId,
    aggregate_type: String,
    max_version: i64,
) -> Result<Option<Snapshot>, SnapshotError> {
    let mut statement = connection
        .prepare_cached(sql)
        .map_err(|e| sqlite_error(e, "prepare get_snapshot"))?;
    let mut rows = statement
        .query(params![aggregate_type, &*id.text(), max_version])
        .map_err(|e| sqlite_error(e, "get_snapshot"))?;
    match rows.next().map_err(|e| sqlite_error(e, "get_snapshot"))? {
        Some(row) => decode(id, aggregate_type, row).map(Some),
        None => Ok(None),
    }
}

#[async_trait]
impl SnapshotStore for SqliteSnapshotStore {
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        let write = SnapshotWrite::new(snapshot, self.keep)?;
        let written = self
            .database
            .run_write(move |connection| {
                // The write lock is taken before the first read, so the check for a higher
                // version, the upsert and the trim are one atomic step under concurrent savers.
                let tx = connection
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| (e, "begin save_snapshot"))?;
                write.upsert(&tx)?;
                tx.commit().map_err(|e| (e, "commit save_snapshot"))
            })
            .await?;
        written.map_err(|(e, context)| sqlite_error(e, context).into())
    }

    async fn get_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.get_at(aggregate_id, aggregate_type, u64::MAX).await
    }

    async fn get_snapshot_at(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        max_version: u64,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.get_at(aggregate_id, aggregate_type, max_version).await
    }

    async fn delete_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let aggregate_type = aggregate_type.to_owned();
        let aggregate_id = aggregate_id.to_string();
        self.run(move |connection| {
            connection
                .prepare_cached(
                    "DELETE FROM snapshots WHERE aggregate_type = ?1 AND aggregate_id = ?2",
                )
                .and_then(|mut s| s.execute(params![aggregate_type, aggregate_id]))
                .map(|deleted| deleted > 0)
                .map_err(|e| sqlite_error(e, "delete_snapshot").into())
        })
        .await
    }

    async fn snapshot_exists(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let aggregate_type = aggregate_type.to_owned();
        let aggregate_id = aggregate_id.to_string();
        self.run(move |connection| {
            connection
                .prepare_cached(
                    "SELECT 1 FROM snapshots WHERE aggregate_type = ?1 AND aggregate_id = ?2 LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row(params![aggregate_type, aggregate_id], |_| Ok(()))
                        .optional()
                })
                .map(|found| found.is_some())
                .map_err(|e| sqlite_error(e, "snapshot_exists").into())
        })
        .await
    }

    async fn delete_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let aggregate_type = aggregate_type.to_owned();
        let below = schema_version_below.map(i64::from);
        self.run(move |connection| {
            connection
                .prepare_cached(
                    "DELETE FROM snapshots
                     WHERE aggregate_type = ?1 AND (?2 IS NULL OR schema_version < ?2)",
                )
                .and_then(|mut s| s.execute(params![aggregate_type, below]))
                .map(|deleted| deleted as u64)
                .map_err(|e| sqlite_error(e, "delete_snapshots_by_type").into())
        })
        .await
    }
}
