//! Core types and traits of snap-es: snapshots, the snapshot and
//! event store traits, the aggregate model and the errors every backend shares.
//!
//! This crate does no I/O. Applications depend on the `snap-es` facade, which re-exports it;
//! backend authors implement [`SnapshotStore`] and [`EventStore`] against it, validate input
//! with [`validate`], and run the `snap-testkit` conformance suite.
//!
//! ```
//! use serde_json::json;
//! use snap_core::{Snapshot, validate};
//! use uuid::Uuid;
//!
//! let snapshot = Snapshot::new(Uuid::new_v4(), "Account", 100, json!({"balance": 5}), 1);
//! assert!(validate::snapshot(&snapshot).is_ok());
//!
//! let mut broken = snapshot.clone();
//! broken.schema_version = 0;
//! assert!(validate::snapshot(&broken).is_err());
//! ```

mod aggregate;
mod backend;
mod codec;
mod decider;
mod error;
mod event;
mod id;
mod migration;
mod ops;
mod snapshot;
mod store;
pub mod traced;
pub mod validate;

pub use aggregate::{Aggregate, AggregateRoot, CaptureError, EncodeError};
pub use backend::{
    Backend, Commit, Committed, DynBackend, LoadRequest, LoadSink, Loaded, Payload, SnapshotRead,
    SnapshotWrite, StoredEvent, share_backend, share_event_store, share_snapshot_store,
};
pub use codec::{SerdeCodec, StateCodec};
pub use decider::{Decided, Decider};
pub use error::{
    BackendError, BoxError, EventStoreError, InvalidInput, ReplayError, SnapshotError,
};
pub use event::{DynEventStore, EventStore, NewEvent, RecordedEvent, collect_batches};
pub use id::{AggregateId, IdText, MAX_ID_LEN};
pub use migration::{MigrationChain, MigrationChainError, MigrationError, SnapshotMigration};
pub use ops::{SnapshotAdmin, SnapshotLag, SnapshotTypeStats};
pub use snapshot::{Snapshot, normalize_timestamp, now};
pub use store::{DynSnapshotStore, SnapshotStore};
pub use traced::{Traced, trace_backend};

/// Re-exported so implementors of the store traits use the same attribute macro version.
pub use async_trait::async_trait;
