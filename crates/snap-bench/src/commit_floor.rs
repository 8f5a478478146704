//! The floor of a one-event save: the bare driver statements that append one event, and that
//! append one event and replace the aggregate's snapshot row, in one transaction, on the
//! floor's connection. Their ratio is what the database itself charges for a snapshot that
//! rides in the commit.

use uuid::Uuid;

use crate::aggregate::{deposit, sample_state};
use crate::floor::Floor;
use crate::scenario::err;

/// The bare append of one event on PostgreSQL, as a literal for [`PG_EVENT_AND_SNAPSHOT`].
macro_rules! pg_event {
    () => {
        "INSERT INTO snap_bench.events (aggregate_type, aggregate_id, version, event_id,
             event_type, payload, metadata)
         VALUES ('BenchAccount', $1, $2, $3, 'Deposited', $4::jsonb, '{}')"
    };
}

/// One event on PostgreSQL.
const PG_EVENT: &str = pg_event!();

/// One event and the snapshot row's upsert, in one statement, on PostgreSQL.
const PG_EVENT_AND_SNAPSHOT: &str = concat!(
    "WITH event AS (",
    pg_event!(),
    ")
     INSERT INTO snap_bench.snapshots
         (aggregate_type, aggregate_id, version, schema_version, state, created_at, updated_at)
     VALUES ('BenchAccount', $1, $2, 1, $5::jsonb, now(), now())
     ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
     SET version = excluded.version, state = excluded.state, updated_at = excluded.updated_at"
);

/// One stream the bare commits append to, one event at a time.
pub(crate) struct BareStream {
    /// The aggregate id's text form, as the stores bind it.
    id: String,
    version: i64,
    payload: String,
    state: String,
}

impl BareStream {
    /// A new stream with the benchmark's event and snapshot bodies, rendered once.
    pub(crate) fn new() -> Result<Self, String> {
        Ok(Self {
            id: Uuid::new_v4().to_string(),
            version: 0,
            payload: serde_json::to_string(&deposit(1)).map_err(err)?,
            state: serde_json::to_string(&sample_state()).map_err(err)?,
        })
    }

    /// Appends one event and, with `snapshot`, replaces the stream's snapshot row with one at
    /// the new version, in one transaction (one statement on PostgreSQL).
    pub(crate) async fn commit(&mut self, floor: &mut Floor, snapshot: bool) -> Result<(), String> {
        self.version += 1;
        let (id, version, event_id) = (self.id.as_str(), self.version, Uuid::new_v4());
        match floor {
            Floor::Sqlite(connection) => {
                let tx = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(err)?;
                tx.prepare_cached(
                    "INSERT INTO events (aggregate_type, aggregate_id, version, event_id,
                         event_type, payload, metadata, recorded_at)
                     VALUES ('BenchAccount', ?1, ?2, ?3, 'Deposited', ?4, '{}', 0)",
                )
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        id,
                        version,
                        event_id.hyphenated().to_string(),
                        self.payload
                    ])
                })
                .map_err(err)?;
                if snapshot {
                    let replaced = tx
                        .prepare_cached(
                            "UPDATE snapshots SET version = ?2, state = ?3, updated_at = 0
                             WHERE aggregate_type = 'BenchAccount' AND aggregate_id = ?1",
                        )
                        .and_then(|mut s| s.execute(rusqlite::params![id, version, self.state]))
                        .map_err(err)?;
                    if replaced == 0 {
                        tx.execute(
                            "INSERT INTO snapshots (aggregate_type, aggregate_id, version,
                                 schema_version, state, created_at, updated_at)
                             VALUES ('BenchAccount', ?1, ?2, 1, ?3, 0, 0)",
                            rusqlite::params![id, version, self.state],
                        )
                        .map_err(err)?;
                    }
                }
                tx.commit().map_err(err)
            }
            Floor::Postgres(connection, _) => {
                let text = if snapshot {
                    PG_EVENT_AND_SNAPSHOT
                } else {
                    PG_EVENT
                };
                let query = sqlx::query(text)
                    .bind(id)
                    .bind(version)
                    .bind(event_id)
                    .bind(&self.payload);
                let query = if snapshot {
                    query.bind(&self.state)
                } else {
                    query
                };
                query.execute(&mut *connection).await.map_err(err)?;
                Ok(())
            }
        }
    }
}
