//! In-memory snapshot and event stores for snap-es: for tests, prototypes and single-process
//! tools. Not for direct use; depend on the `snap-es` facade (feature `memory`, on by default).
//!
//! Both stores are cheap handles: clones share the same data. They are thread-safe and never
//! hold a lock across an `.await`.
//!
//! ```
//! use serde_json::json;
//! use snap_core::{AggregateId, Snapshot, SnapshotStore};
//! use snap_memory::InMemorySnapshotStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = InMemorySnapshotStore::new();
//! let id = AggregateId::parse("account-7")?;
//! store.save_snapshot(&Snapshot::new(&id, "Account", 10, json!({"balance": 7}), 1)).await?;
//! let latest = store.get_snapshot(&id, "Account").await?.expect("saved above");
//! assert_eq!(latest.version, 10);
//! assert_eq!(store.snapshot_count(), 1);
//! # Ok(()) }
//! ```

mod database;
mod event_store;
mod snapshot_store;

pub use database::InMemoryDatabase;
pub use event_store::InMemoryEventStore;
pub use snapshot_store::InMemorySnapshotStore;
