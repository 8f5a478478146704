//! PostgreSQL snapshot and event stores for snap-es, for many processes and machines sharing
//! one database. Not for direct use; depend on the `snap-es` facade with the `postgres`
//! feature.
//!
//! Built on sqlx (tokio, rustls) with its runtime query API: nothing needs a database at build
//! time. Tables live in a schema of your choice (default `public`), so several applications or
//! tenants can share a database; [`PostgresDatabase::migrate`] creates them.
//!
//! ```no_run
//! use serde_json::json;
//! use snap_core::{AggregateId, Snapshot, SnapshotStore};
//! use snap_postgres::PostgresOptions;
//! use uuid::Uuid;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let database = PostgresOptions::new("postgres://postgres@127.0.0.1:5432/test")
//!     .schema("billing")
//!     .connect()
//!     .await?;
//! let snapshots = database.snapshot_store();
//! let id = AggregateId::from(Uuid::new_v4());
//! snapshots.save_snapshot(&Snapshot::new(&id, "Invoice", 3, json!({"total": 12}), 1)).await?;
//! assert_eq!(snapshots.get_snapshot(&id, "Invoice").await?.map(|s| s.version), Some(3));
//! # Ok(()) }
//! ```

mod backend;
mod database;
mod error;
mod event_store;
mod jsonb;
mod ops;
#[cfg(test)]
mod plans;
mod snapshot_store;

pub use database::{
    DEFAULT_SCHEMA, MIGRATIONS, PostgresDatabase, PostgresOptions, validate_schema_name,
};
pub use event_store::PostgresEventStore;
pub use snapshot_store::PostgresSnapshotStore;
pub use sqlx;
