//! Errors of the repository.

use snap_core::{
    AggregateId, CaptureError, EncodeError, EventStoreError, ReplayError, SnapshotError,
};
use snap_strategy::StrategyError;

/// Why a repository operation failed.
///
/// A snapshot problem during `load` or after a committed `save` is never an error: the load
/// falls back to a full replay and the save still succeeds (see `RepositoryStats`). Only an
/// explicit `create_snapshot` returns snapshot errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// The aggregate has no events, or its state says it was discarded.
    #[error("aggregate {aggregate_type}/{aggregate_id} not found")]
    AggregateNotFound {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
    },
    /// Another writer appended first: reload the aggregate and retry the command. Nothing of
    /// this save was written.
    #[error(
        "concurrent modification of {aggregate_type}/{aggregate_id}: expected version {expected}, found {actual}"
    )]
    Concurrency {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// The version this save expected.
        expected: u64,
        /// The stream's actual version.
        actual: u64,
    },
    /// The event store failed.
    #[error("event store operation failed")]
    EventStore(#[source] EventStoreError),
    /// The stored events cannot rebuild the aggregate: a gap in the stream (history archived
    /// or lost), or an event that does not deserialise. Never answered with a wrong state.
    #[error("the stored events cannot be replayed")]
    Replay(#[from] ReplayError),
    /// An uncommitted event cannot be stored: it does not serialise, or its JSON does not
    /// read back as the event, so it could never be replayed. Nothing of this save was
    /// written.
    #[error("an event of {aggregate_type}/{aggregate_id} cannot be stored")]
    Serialization {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// Which event, and why.
        #[source]
        source: EncodeError,
    },
    /// `create_snapshot` on a repository built without a snapshot store.
    #[error("the repository has no snapshot store")]
    NoSnapshotStore,
    /// `create_snapshot` could not capture the root (uncommitted events, no events, state not
    /// an object).
    #[error("the aggregate cannot be snapshotted")]
    Capture(#[from] CaptureError),
    /// `create_snapshot`'s write failed.
    #[error("the snapshot store failed")]
    Snapshot(#[from] SnapshotError),
    /// `create_snapshot` of a state older than the aggregate's stored snapshot: stores never
    /// move back, so nothing was written. Load the aggregate at its head to snapshot it.
    #[error(
        "{aggregate_type}/{aggregate_id} at version {version} is older than its stored snapshot at version {stored}; nothing was written"
    )]
    SnapshotSuperseded {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// The version of the state given.
        version: u64,
        /// The version of the stored snapshot.
        stored: u64,
    },
}

impl From<EventStoreError> for RepositoryError {
    fn from(error: EventStoreError) -> Self {
        match error {
            EventStoreError::Concurrency {
                aggregate_id,
                aggregate_type,
                expected,
                actual,
            } => Self::Concurrency {
                aggregate_id,
                aggregate_type,
                expected,
                actual,
            },
            other => Self::EventStore(other),
        }
    }
}

impl RepositoryError {
    /// Whether retrying the whole command (reload, decide, save) may succeed: a version
    /// conflict, or a backend error marked retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Concurrency { .. } => true,
            Self::EventStore(EventStoreError::Backend(e)) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Why a repository could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The strategy's settings are invalid (e.g. `Threshold(0)`).
    #[error("invalid snapshot strategy")]
    Strategy(#[from] StrategyError),
    /// The aggregate's `SCHEMA_VERSION` is 0; schema versions start at 1.
    #[error("{aggregate_type}::SCHEMA_VERSION must be at least 1")]
    SchemaVersionZero {
        /// The aggregate type.
        aggregate_type: &'static str,
    },
    /// The migration chain ends at another schema version than the aggregate's.
    #[error(
        "the migration chain ends at schema version {chain}, but {aggregate_type}::SCHEMA_VERSION is {aggregate}"
    )]
    ChainMismatch {
        /// The aggregate type.
        aggregate_type: &'static str,
        /// Where the chain ends.
        chain: u32,
        /// The aggregate's schema version.
        aggregate: u32,
    },
}
