//! The aggregates the repository cases use: one account in three schema versions.
//!
//! All three share the type name `"Account"` and the events, so they read the same streams:
//!
//! - schema 1, [`AccountV1`]: `{"owner", "balance", "deposits", "closed"}`
//! - schema 2, [`AccountV2`]: the balance is kept in cents, `balance_cents` replaces `balance`
//! - schema 3, [`AccountV3`]: adds `currency`
//!
//! [`to_v2`] and [`to_v3`] migrate a state one step; a migrated state equals the state the
//! newer code builds by replaying the same events, so the repository's promise can be checked.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use snap_core::{Aggregate, BoxError, SnapshotMigration};

/// What happens to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// The account is opened for an owner.
    Opened {
        /// Who owns it.
        owner: String,
    },
    /// Money in.
    Deposited {
        /// How much.
        amount: i64,
    },
    /// Money out.
    Withdrawn {
        /// How much.
        amount: i64,
    },
    /// The account is closed: it loads as not found afterwards.
    Closed,
}

/// Schema 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountV1 {
    /// Who owns it.
    pub owner: String,
    /// The balance in whole units.
    pub balance: i64,
    /// Deposits so far.
    pub deposits: u64,
    /// Whether it was closed.
    pub closed: bool,
}

impl Aggregate for AccountV1 {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner.clone_from(owner),
            AccountEvent::Deposited { amount } => {
                self.balance += amount;
                self.deposits += 1;
            }
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
            AccountEvent::Closed => self.closed = true,
        }
    }

    fn is_discarded(&self) -> bool {
        self.closed
    }
}

/// Schema 2: the balance in cents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountV2 {
    /// Who owns it.
    pub owner: String,
    /// The balance in cents.
    pub balance_cents: i64,
    /// Deposits so far.
    pub deposits: u64,
    /// Whether it was closed.
    pub closed: bool,
}

impl Aggregate for AccountV2 {
    const TYPE: &'static str = "Account";
    const SCHEMA_VERSION: u32 = 2;
    type Event = AccountEvent;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner.clone_from(owner),
            AccountEvent::Deposited { amount } => {
                self.balance_cents += amount * 100;
                self.deposits += 1;
            }
            AccountEvent::Withdrawn { amount } => self.balance_cents -= amount * 100,
            AccountEvent::Closed => self.closed = true,
        }
    }

    fn is_discarded(&self) -> bool {
        self.closed
    }
}

/// Schema 3: with a currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountV3 {
    /// Who owns it.
    pub owner: String,
    /// The balance in cents.
    pub balance_cents: i64,
    /// Deposits so far.
    pub deposits: u64,
    /// Whether it was closed.
    pub closed: bool,
    /// Always `"EUR"` once opened.
    pub currency: String,
}

impl Aggregate for AccountV3 {
    const TYPE: &'static str = "Account";
    const SCHEMA_VERSION: u32 = 3;
    type Event = AccountEvent;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => {
                self.owner.clone_from(owner);
                "EUR".clone_into(&mut self.currency);
            }
            AccountEvent::Deposited { amount } => {
                self.balance_cents += amount * 100;
                self.deposits += 1;
            }
            AccountEvent::Withdrawn { amount } => self.balance_cents -= amount * 100,
            AccountEvent::Closed => self.closed = true,
        }
    }

    fn is_discarded(&self) -> bool {
        self.closed
    }
}

fn object(state: &mut Value) -> Result<&mut serde_json::Map<String, Value>, BoxError> {
    state
        .as_object_mut()
        .ok_or_else(|| "the state is not an object".into())
}

/// Schema 1 to 2: `balance` in units becomes `balance_cents`.
pub fn to_v2() -> SnapshotMigration {
    SnapshotMigration::new(1, 2, |mut state| {
        let fields = object(&mut state)?;
        let balance = fields
            .remove("balance")
            .and_then(|b| b.as_i64())
            .ok_or("schema 1 state without a balance")?;
        fields.insert("balance_cents".into(), json!(balance * 100));
        Ok(state)
    })
}

/// Schema 2 to 3: adds `currency`.
pub fn to_v3() -> SnapshotMigration {
    SnapshotMigration::new(2, 3, |mut state| {
        object(&mut state)?.insert("currency".into(), json!("EUR"));
        Ok(state)
    })
}

/// A step from 1 to 2 that always fails.
pub fn failing_to_v2() -> SnapshotMigration {
    SnapshotMigration::new(1, 2, |_| Err("this migration always fails".into()))
}

/// Opens an account and makes `deposits` deposits of 1, 2, 3, ...
pub fn history(owner: &str, deposits: u64) -> Vec<AccountEvent> {
    std::iter::once(AccountEvent::Opened {
        owner: owner.to_owned(),
    })
    .chain((1..=deposits).map(|n| AccountEvent::Deposited {
        amount: i64::try_from(n).unwrap_or(i64::MAX),
    }))
    .collect()
}

/// Schema 1 code whose `apply` changed without a schema bump: deposits count double. Its
/// snapshots disagree with a replay of the same events by [`AccountV1`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DriftedAccount(pub AccountV1);

impl Aggregate for DriftedAccount {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;

    fn apply(&mut self, event: &AccountEvent) {
        self.0.apply(event);
        if let AccountEvent::Deposited { amount } = event {
            self.0.balance += amount;
        }
    }
}

/// The account as a decider: commands in, events out, the state of [`AccountV1`].
#[derive(Debug, Clone, Copy)]
pub struct AccountDecider;

/// What an account is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// Open the account for an owner (once).
    Open(String),
    /// Put money in.
    Deposit(i64),
    /// Take money out, if the balance covers it.
    Withdraw(i64),
    /// Close the account: it is terminal afterwards, and `handle` refuses every command.
    Close,
}

/// Why an account refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountRefusal {
    /// `Open` on an open account.
    #[error("the account is already open")]
    AlreadyOpen,
    /// A deposit or withdrawal on an account that was never opened.
    #[error("the account is not open")]
    NotOpen,
    /// A withdrawal above the balance.
    #[error("insufficient funds: balance {balance}, asked {asked}")]
    InsufficientFunds {
        /// The balance.
        balance: i64,
        /// The withdrawal.
        asked: i64,
    },
}

impl snap_core::Decider for AccountDecider {
    const TYPE: &'static str = "Account";
    type State = AccountV1;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountRefusal;

    fn initial_state() -> AccountV1 {
        AccountV1::default()
    }

    fn decide(
        command: &AccountCommand,
        state: &AccountV1,
    ) -> Result<Vec<AccountEvent>, AccountRefusal> {
        let open = !state.owner.is_empty();
        match command {
            AccountCommand::Open(_) if open => Err(AccountRefusal::AlreadyOpen),
            AccountCommand::Open(owner) => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            _ if !open => Err(AccountRefusal::NotOpen),
            AccountCommand::Deposit(amount) => {
                Ok(vec![AccountEvent::Deposited { amount: *amount }])
            }
            AccountCommand::Withdraw(amount) if *amount > state.balance => {
                Err(AccountRefusal::InsufficientFunds {
                    balance: state.balance,
                    asked: *amount,
                })
            }
            AccountCommand::Withdraw(amount) => {
                Ok(vec![AccountEvent::Withdrawn { amount: *amount }])
            }
            AccountCommand::Close => Ok(vec![AccountEvent::Closed]),
        }
    }

    fn evolve(mut state: AccountV1, event: &AccountEvent) -> AccountV1 {
        state.apply(event);
        state
    }

    fn is_terminal(state: &AccountV1) -> bool {
        state.closed
    }
}

/// The account as the repository cases see it: [`AccountV1`] itself, or the same state as the
/// decider's, wrapped in [`Decided`](snap_core::Decided). Both have the type name `"Account"`,
/// schema 1 and the same JSON, so they read the same streams and the same snapshots, and every
/// case that runs on one runs on the other.
pub trait AccountModel:
    Aggregate<Event = AccountEvent> + Clone + PartialEq + std::fmt::Debug
{
    /// The account's state.
    fn account(&self) -> &AccountV1;
}

impl AccountModel for AccountV1 {
    fn account(&self) -> &AccountV1 {
        self
    }
}

impl AccountModel for snap_core::Decided<AccountDecider> {
    fn account(&self) -> &AccountV1 {
        &self.0
    }
}
