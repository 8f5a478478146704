//! A small bank, as an application that runs the snap-es operator commands from its own
//! binary (`bank-ops`): an account aggregate and a wallet decider, both registered with
//! [`admin`], and a `seed` command that fills a database to try them on.

use serde::{Deserialize, Serialize};
use snap_es::admin::Admin;
use snap_es::{Aggregate, Decider};

/// A bank account, as an aggregate.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Its owner, once opened.
    pub owner: Option<String>,
    /// The balance in cents.
    pub balance: i64,
    /// Deposits and withdrawals so far.
    pub movements: u64,
}

/// What happens to an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AccountEvent {
    /// Opened for an owner.
    Opened {
        /// The owner.
        owner: String,
    },
    /// Money in.
    Deposited {
        /// Cents.
        cents: i64,
    },
    /// Money out.
    Withdrawn {
        /// Cents.
        cents: i64,
    },
}

impl Aggregate for Account {
    const TYPE: &'static str = "BankAccount";
    type Event = AccountEvent;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner.clone()),
            AccountEvent::Deposited { cents } => {
                self.balance += cents;
                self.movements += 1;
            }
            AccountEvent::Withdrawn { cents } => {
                self.balance -= cents;
                self.movements += 1;
            }
        }
    }
}

/// A wallet, as a decider: commands decide events, events evolve the state.
#[derive(Debug)]
pub struct Wallet;

/// A wallet's state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coins {
    /// Coins held.
    pub coins: u64,
}

/// What a wallet is asked to do.
#[derive(Debug, Clone)]
pub enum WalletCommand {
    /// Add coins.
    Add(u64),
    /// Spend coins.
    Spend(u64),
}

/// What happened to a wallet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WalletEvent {
    /// Coins added.
    Added(u64),
    /// Coins spent.
    Spent(u64),
}

/// Why a wallet refused a command.
#[derive(Debug, thiserror::Error)]
pub enum WalletRefused {
    /// Not enough coins.
    #[error("not enough coins: {held} held, {asked} asked")]
    NotEnough {
        /// Held.
        held: u64,
        /// Asked.
        asked: u64,
    },
}

impl Decider for Wallet {
    const TYPE: &'static str = "Wallet";
    type State = Coins;
    type Command = WalletCommand;
    type Event = WalletEvent;
    type Error = WalletRefused;

    fn initial_state() -> Coins {
        Coins::default()
    }

    fn decide(command: &WalletCommand, state: &Coins) -> Result<Vec<WalletEvent>, WalletRefused> {
        match command {
            WalletCommand::Add(n) => Ok(vec![WalletEvent::Added(*n)]),
            WalletCommand::Spend(n) if *n > state.coins => Err(WalletRefused::NotEnough {
                held: state.coins,
                asked: *n,
            }),
            WalletCommand::Spend(n) => Ok(vec![WalletEvent::Spent(*n)]),
        }
    }

    fn evolve(mut state: Coins, event: &WalletEvent) -> Coins {
        match event {
            WalletEvent::Added(n) => state.coins += n,
            WalletEvent::Spent(n) => state.coins -= n,
        }
        state
    }
}

/// The operator commands with this application's types: what `bank-ops snapshots ...` runs.
pub fn admin() -> Admin {
    Admin::new("bank-ops snapshots")
        .aggregate::<Account>()
        .decider::<Wallet>()
}
