//! How an aggregate's state becomes a snapshot's stored state and back: [`StateCodec`], with
//! serde as the default ([`SerdeCodec`]).

use std::fmt::Debug;

use serde_json::Value;

use crate::aggregate::Aggregate;
use crate::error::BoxError;

/// Turns an aggregate's state into the JSON object a snapshot stores, and back.
///
/// The repositories use [`SerdeCodec`] (the state's own `Serialize` and `Deserialize`) unless
/// given another with `.codec(..)` on their builder. A codec of its own lets the snapshot keep
/// a form other than the state's serde form without touching the aggregate: a stable data
/// transfer shape while the state's fields move, fields left out or encrypted, a large field
/// compressed into a string. What it encodes must be a JSON object (the stores keep objects)
/// and must decode back to the same state; the conformance of a load through a snapshot with a
/// full replay holds only if `decode(encode(state))` equals `state`, which
/// `verify_snapshot` checks against the events.
///
/// Schema migrations ([`MigrationChain`](crate::MigrationChain)) run on the stored object
/// before `decode`, so `decode` sees the current `SCHEMA_VERSION`'s shape.
pub trait StateCodec<A>: Send + Sync + Debug + 'static {
    /// The state as the snapshot stores it.
    fn encode(&self, state: &A) -> Result<Value, BoxError>;

    /// The state from a stored (and migrated) snapshot.
    fn decode(&self, stored: &Value) -> Result<A, BoxError>;
}

/// The default codec: the state's serde form, through `serde_json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SerdeCodec;

impl<A: Aggregate> StateCodec<A> for SerdeCodec {
    fn encode(&self, state: &A) -> Result<Value, BoxError> {
        Ok(serde_json::to_value(state)?)
    }

    fn decode(&self, stored: &Value) -> Result<A, BoxError> {
        Ok(A::deserialize(stored)?)
    }
}
