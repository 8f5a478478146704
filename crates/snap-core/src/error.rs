//! Error types shared by every store and by the repository.
//!
//! Each concern has one enum; the enums are `#[non_exhaustive]` so new backends and features can
//! add variants without a breaking release. Stores written outside this workspace build errors
//! through the public constructors ([`SnapshotError::backend`], [`EventStoreError::backend`],
//! [`SnapshotError::deserialization`]).

use crate::id::AggregateId;

/// A boxed error that can cross threads; the `source` of backend and deserialisation errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an argument was refused before anything was written.
///
/// Every store validates its input with the helpers in [`crate::validate`], so the same bad input
/// gets the same error on every backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// A name (aggregate type, event type) was empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The argument that was refused.
        field: &'static str,
    },
    /// A name was longer than the limit, counted in UTF-8 bytes.
    #[error("{field} is {len} bytes long; at most {max} bytes are allowed")]
    TooLong {
        /// The argument that was refused.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A name contained a NUL character, which SQL text columns cannot hold.
    #[error("{field} must not contain a NUL character")]
    ContainsNul {
        /// The argument that was refused.
        field: &'static str,
    },
    /// A number was outside the range a store can hold.
    #[error("{field} {value} is out of range: {reason}")]
    OutOfRange {
        /// The argument that was refused.
        field: &'static str,
        /// The value given.
        value: u64,
        /// What the range is.
        reason: &'static str,
    },
    /// A value that must be a JSON object was some other JSON value.
    #[error("{field} must be a JSON object, got a JSON {found}")]
    NotAnObject {
        /// The argument that was refused.
        field: &'static str,
        /// The kind of JSON value given (`"array"`, `"string"`, ...).
        found: &'static str,
    },
    /// A name used as an SQL identifier (a schema name) has characters outside the allowed set.
    #[error(
        "{field} {value:?} is not a valid identifier: use lowercase ASCII letters, digits and _, not starting with a digit"
    )]
    InvalidIdentifier {
        /// The argument that was refused.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// A JSON value was nested deeper than every backend can read back.
    #[error("{field} is nested {depth} levels deep; at most {max} levels are allowed")]
    TooDeep {
        /// The argument that was refused.
        field: &'static str,
        /// The nesting depth found (at least `max + 1`).
        depth: usize,
        /// The limit.
        max: usize,
    },
}

/// A failure inside a storage backend: a lost connection, an I/O error, a driver error.
///
/// Its `Display` names the backend and what failed; the driver's error is the
/// [`source`](std::error::Error::source), so it is not repeated in the message.
#[derive(Debug, thiserror::Error)]
#[error("{backend} backend error: {context}")]
pub struct BackendError {
    backend: &'static str,
    context: String,
    retryable: bool,
    #[source]
    source: BoxError,
}

impl BackendError {
    /// Wraps a driver error. `backend` is a short name such as `"sqlite"` or `"redis"`.
    pub fn new(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self {
            backend,
            context: "operation failed".to_owned(),
            retryable: false,
            source: source.into(),
        }
    }

    /// Says what was being done when the error happened (e.g. `"save_snapshot"`).
    #[must_use]
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }

    /// Marks the error as transient: the same call may succeed if tried again.
    #[must_use]
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// The backend's short name.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Whether the same call may succeed if tried again (a dropped connection, a busy database).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// Errors of a [`SnapshotStore`](crate::SnapshotStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A stored snapshot could not be read back: corrupt JSON, a row of the wrong shape.
    #[error("snapshot of {aggregate_type}/{aggregate_id} could not be deserialized")]
    Deserialization {
        /// The aggregate whose snapshot is unreadable.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// An argument was refused before anything was written.
    #[error("invalid snapshot store input")]
    InvalidInput(#[from] InvalidInput),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl SnapshotError {
    /// A backend failure, for stores written outside this workspace:
    /// `SnapshotError::backend("redis", err)`.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend(BackendError::new(backend, source))
    }

    /// An unreadable stored snapshot.
    pub fn deserialization(
        aggregate_id: AggregateId,
        aggregate_type: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Deserialization {
            aggregate_id,
            aggregate_type: aggregate_type.into(),
            source: source.into(),
        }
    }

    /// Whether the same call may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backend(e) if e.is_retryable())
    }
}

/// Errors of an [`EventStore`](crate::EventStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventStoreError {
    /// Optimistic concurrency: the stream was not at the expected version, so nothing was
    /// appended. Reload the aggregate and try again.
    #[error(
        "concurrency conflict on {aggregate_type}/{aggregate_id}: expected version {expected}, stream is at {actual}"
    )]
    Concurrency {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// The version the caller expected the stream to be at.
        expected: u64,
        /// The version the stream was at.
        actual: u64,
    },
    /// A stored event could not be read back.
    #[error("event {version} of {aggregate_type}/{aggregate_id} could not be deserialized")]
    Deserialization {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// The event's version.
        version: u64,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// An argument was refused before anything was written.
    #[error("invalid event store input")]
    InvalidInput(#[from] InvalidInput),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl EventStoreError {
    /// A backend failure, for stores written outside this workspace.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend(BackendError::new(backend, source))
    }

    /// Whether trying again may succeed: after a [`Concurrency`](Self::Concurrency) conflict
    /// (reload first) or a transient backend failure.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Concurrency { .. } => true,
            Self::Backend(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Why a list of events could not be applied to an aggregate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The next event's version is not the aggregate's version plus one: events are missing
    /// (history archived or lost) or out of order.
    #[error(
        "event stream of {aggregate_type}/{aggregate_id} has a gap: expected version {expected}, found {found}"
    )]
    VersionGap {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// The version that should have come next.
        expected: u64,
        /// The version that came.
        found: u64,
    },
    /// Stored events were applied to a root that has uncommitted events.
    #[error(
        "{aggregate_type}/{aggregate_id} has {count} uncommitted events; stored events cannot be applied after them"
    )]
    Uncommitted {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// How many events are uncommitted.
        count: usize,
    },
    /// An event belongs to another aggregate or type.
    #[error(
        "event {version} belongs to {found_type}/{found_id}, not to {aggregate_type}/{aggregate_id}"
    )]
    WrongStream {
        /// The aggregate being replayed.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// The event's aggregate id.
        found_id: AggregateId,
        /// The event's aggregate type.
        found_type: String,
        /// The event's version.
        version: u64,
    },
    /// An event's payload does not deserialise into the aggregate's event type.
    #[error(
        "event {version} of {aggregate_type}/{aggregate_id} does not deserialize into the aggregate's event type"
    )]
    Event {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// The event's version.
        version: u64,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A snapshot's state does not deserialise into the aggregate, or was taken of another
    /// aggregate.
    #[error("snapshot {snapshot} cannot restore {aggregate_type}/{aggregate_id}")]
    Snapshot {
        /// The aggregate.
        aggregate_id: AggregateId,
        /// Its type.
        aggregate_type: String,
        /// The snapshot's `Display` form.
        snapshot: String,
        /// Why.
        #[source]
        source: BoxError,
    },
}
