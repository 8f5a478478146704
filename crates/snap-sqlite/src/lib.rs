//! SQLite snapshot and event stores for snap-es: one file, no server, for desktop apps, edge
//! boxes and single-node services. Not for direct use; depend on the `snap-es` facade with
//! the `sqlite` feature.
//!
//! SQLite is bundled (nothing to install). Connections come from a deadpool pool; files run
//! in WAL mode with `synchronous=FULL` by default ([`Durability`]); blocking calls leave the
//! async executor as [`Blocking`] says. The schema is migrated on open.
//!
//! ```
//! use serde_json::json;
//! use snap_core::{AggregateId, EventStore, NewEvent, Snapshot, SnapshotStore};
//! use snap_sqlite::SqliteDatabase;
//! use uuid::Uuid;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("snap-es-doc-{}", Uuid::new_v4()));
//! std::fs::create_dir_all(&dir)?;
//! let database = SqliteDatabase::open(dir.join("app.db")).await?;
//! let (events, snapshots) = (database.event_store(), database.snapshot_store());
//!
//! let id = AggregateId::parse("acc-1")?; // or AggregateId::from(Uuid::new_v4())
//! events.append(&id, "Account", 0, vec![NewEvent::new("Opened", json!({"owner": "Ada"}))]).await?;
//! snapshots.save_snapshot(&Snapshot::new(&id, "Account", 1, json!({"owner": "Ada"}), 1)).await?;
//! assert_eq!(snapshots.get_snapshot(&id, "Account").await?.map(|s| s.version), Some(1));
//! # std::fs::remove_dir_all(dir)?;
//! # Ok(()) }
//! ```

mod backend;
mod codec;
mod database;
mod error;
mod event_store;
mod ops;
mod snapshot_store;

pub use database::{Blocking, Durability, MIGRATIONS, SqliteDatabase, SqliteOptions};
pub use event_store::SqliteEventStore;
pub use rusqlite;
pub use snapshot_store::SqliteSnapshotStore;
