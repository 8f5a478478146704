//! NATS JetStream event and snapshot stores for snap-es: a backend that replicates across
//! machines and survives losing one of them. Not for direct use; depend on the `snap-es`
//! facade (feature `nats`).
//!
//! - **Events** live in the stream `<PREFIX>_EVENTS`, one subject per aggregate,
//!   `<prefix>.events.<type>.<id>`. A save is one message that holds all its events: it is
//!   stored whole or not at all. The server checks the expected version (the subject's last
//!   sequence), and a save sent again after a lost acknowledgement is stored once.
//! - **Snapshots** live in the stream `<PREFIX>_SNAPSHOTS`, which keeps the last message of
//!   each subject: the latest per aggregate under one key, replaced by compare-and-set so it
//!   never moves back, and older versions under keys of their own when history is kept.
//! - [`NatsDatabase`] is the backend the repositories use: a load reads the snapshot and the
//!   stream's last save at once, and the events after the snapshot from the save that holds
//!   its version (each snapshot notes where that save sits); a commit publishes the events,
//!   then the snapshot.
//! - [`NatsOptions::replicas`] sets how many servers keep each message: 1 on a single server,
//!   3 on a cluster.
//!
//! # Subjects and keys
//!
//! An aggregate type or id becomes one subject token: ASCII letters, digits, `-` and `_` stay
//! as they are and every other byte is written `=` and two hex digits (`"acc 1"` is
//! `acc=201`). No id can reach another subject, and every id has one token.
//!
//! ```no_run
//! use serde_json::json;
//! use snap_core::{AggregateId, EventStore, NewEvent, Snapshot, SnapshotStore};
//! use snap_nats::NatsOptions;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let database = NatsOptions::new("nats://127.0.0.1:4222").prefix("billing").connect().await?;
//! let (events, snapshots) = (database.event_store(), database.snapshot_store());
//! let id = AggregateId::parse("invoice-7")?;
//! events.append(&id, "Invoice", 0, vec![NewEvent::new("Issued", json!({"total": 12}))]).await?;
//! snapshots.save_snapshot(&Snapshot::new(&id, "Invoice", 1, json!({"total": 12}), 1)).await?;
//! assert_eq!(snapshots.get_snapshot(&id, "Invoice").await?.map(|s| s.version), Some(1));
//! # Ok(()) }
//! ```

mod admin;
mod backend;
mod database;
mod error;
mod event_store;
mod guesses;
mod read;
mod snapshot_store;
mod token;
mod wire;

pub use database::{MAX_HISTORY, NatsDatabase, NatsOptions};
pub use event_store::NatsEventStore;
pub use snapshot_store::NatsSnapshotStore;
