//! The decider style: pure functions over a state instead of an aggregate object.
//!
//! A [`Decider`] turns a command into events with [`decide`](Decider::decide) and folds events
//! into its state with [`evolve`](Decider::evolve). [`Decided`] wraps its state as an
//! [`Aggregate`], so the whole machinery of snapshots, strategies and migrations serves
//! deciders unchanged.

use std::fmt;
use std::ops::Deref;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::aggregate::Aggregate;

/// An event-sourced decider: `decide` answers a command with events, `evolve` applies one
/// event to the state. Both are pure: the state after events `1..=n` is the fold of `evolve`
/// over them from [`initial_state`](Self::initial_state), however it was loaded.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use snap_core::Decider;
///
/// struct Account;
///
/// #[derive(Clone, Default, Serialize, Deserialize)]
/// struct Balance { cents: i64 }
///
/// enum Command { Deposit(i64), Withdraw(i64) }
///
/// #[derive(Clone, Serialize, Deserialize)]
/// enum Event { Deposited(i64), Withdrawn(i64) }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("insufficient funds")]
/// struct InsufficientFunds;
///
/// impl Decider for Account {
///     const TYPE: &'static str = "Account";
///     type State = Balance;
///     type Command = Command;
///     type Event = Event;
///     type Error = InsufficientFunds;
///
///     fn initial_state() -> Balance { Balance::default() }
///
///     fn decide(command: &Command, state: &Balance) -> Result<Vec<Event>, InsufficientFunds> {
///         match *command {
///             Command::Deposit(cents) => Ok(vec![Event::Deposited(cents)]),
///             Command::Withdraw(cents) if cents > state.cents => Err(InsufficientFunds),
///             Command::Withdraw(cents) => Ok(vec![Event::Withdrawn(cents)]),
///         }
///     }
///
///     fn evolve(mut state: Balance, event: &Event) -> Balance {
///         match event {
///             Event::Deposited(cents) => state.cents += cents,
///             Event::Withdrawn(cents) => state.cents -= cents,
///         }
///         state
///     }
/// }
///
/// let state = Account::evolve(Account::initial_state(), &Event::Deposited(500));
/// assert!(Account::decide(&Command::Withdraw(600), &state).is_err());
/// assert_eq!(Account::decide(&Command::Withdraw(200), &state).unwrap().len(), 1);
/// ```
pub trait Decider: Send + Sync + 'static {
    /// The aggregate type name stored with events and snapshots.
    const TYPE: &'static str;
    /// The version of the state's serialised shape; bump it when the shape changes.
    const SCHEMA_VERSION: u32 = 1;
    /// The state `evolve` folds events into.
    type State: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What `decide` answers.
    type Command: Send + Sync;
    /// What `decide` produces and `evolve` applies.
    type Event: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// Why `decide` rejects a command.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The state before any event.
    fn initial_state() -> Self::State;

    /// The events that carry out `command` in `state`, or why it is rejected. An empty list
    /// means there is nothing to do.
    fn decide(
        command: &Self::Command,
        state: &Self::State,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after `event`.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Whether the state marks the aggregate as deleted; it then loads as not found.
    fn is_terminal(_state: &Self::State) -> bool {
        false
    }
}

/// A decider's state as an [`Aggregate`]: what the repositories load, snapshot and save. It
/// serialises exactly as `D::State` and dereferences to it.
pub struct Decided<D: Decider>(pub D::State);

impl<D: Decider> Decided<D> {
    /// The state.
    pub fn into_inner(self) -> D::State {
        self.0
    }
}

impl<D: Decider> Deref for Decided<D> {
    type Target = D::State;

    fn deref(&self) -> &D::State {
        &self.0
    }
}

impl<D: Decider> Default for Decided<D> {
    fn default() -> Self {
        Self(D::initial_state())
    }
}

impl<D: Decider> Clone for Decided<D>
where
    D::State: Clone,
{
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<D: Decider> PartialEq for Decided<D>
where
    D::State: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<D: Decider> fmt::Debug for Decided<D>
where
    D::State: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Decided").field(&self.0).finish()
    }
}

impl<D: Decider> Serialize for Decided<D> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, D: Decider> Deserialize<'de> for Decided<D> {
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        D::State::deserialize(deserializer).map(Self)
    }
}

impl<D: Decider> Aggregate for Decided<D> {
    const TYPE: &'static str = D::TYPE;
    const SCHEMA_VERSION: u32 = D::SCHEMA_VERSION;
    type Event = D::Event;

    fn apply(&mut self, event: &D::Event) {
        let state = std::mem::replace(&mut self.0, D::initial_state());
        self.0 = D::evolve(state, event);
    }

    fn is_discarded(&self) -> bool {
        D::is_terminal(&self.0)
    }
}
