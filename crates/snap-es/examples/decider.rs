//! A bank account written as a decider: `decide` answers commands with events, `evolve`
//! folds events into the state, and a `DeciderRepository` loads it through snapshots.
//!
//! Run it with `cargo run --example decider`. The stores live in a SQLite file in the system's
//! temp directory (the example prints its path); pass `--memory` for the in-memory stores.

#![allow(clippy::print_stdout, reason = "an example reports on its terminal")]

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use snap_es::prelude::*;
use snap_es::{DynEventStore, DynSnapshotStore};

/// The decider: a marker type whose associated functions are the domain logic.
struct BankAccount;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Balance {
    owner: Option<String>,
    cents: i64,
}

enum Command {
    Open { owner: String },
    Deposit { cents: i64 },
    Withdraw { cents: i64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Event {
    Opened { owner: String },
    Deposited { cents: i64 },
    Withdrawn { cents: i64 },
}

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("insufficient funds: {balance} cents, {asked} asked")]
    InsufficientFunds { balance: i64, asked: i64 },
}

impl Decider for BankAccount {
    const TYPE: &'static str = "BankAccount";
    type State = Balance;
    type Command = Command;
    type Event = Event;
    type Error = Refused;

    fn initial_state() -> Balance {
        Balance::default()
    }

    fn decide(command: &Command, state: &Balance) -> Result<Vec<Event>, Refused> {
        match (command, &state.owner) {
            (Command::Open { .. }, Some(_)) => Err(Refused::AlreadyOpen),
            (Command::Open { owner }, None) => Ok(vec![Event::Opened {
                owner: owner.clone(),
            }]),
            (_, None) => Err(Refused::NotOpen),
            (Command::Deposit { cents }, _) => Ok(vec![Event::Deposited { cents: *cents }]),
            (Command::Withdraw { cents }, _) if *cents > state.cents => {
                Err(Refused::InsufficientFunds {
                    balance: state.cents,
                    asked: *cents,
                })
            }
            (Command::Withdraw { cents }, _) => Ok(vec![Event::Withdrawn { cents: *cents }]),
        }
    }

    fn evolve(mut state: Balance, event: &Event) -> Balance {
        match event {
            Event::Opened { owner } => state.owner = Some(owner.clone()),
            Event::Deposited { cents } => state.cents += cents,
            Event::Withdrawn { cents } => state.cents -= cents,
        }
        state
    }
}

type Error = Box<dyn std::error::Error>;

async fn run(events: Arc<DynEventStore>, snapshots: Arc<DynSnapshotStore>) -> Result<(), Error> {
    let accounts =
        DeciderRepository::<BankAccount>::builder(StorePair::new(Arc::clone(&events), snapshots))
            .strategy(Threshold(100))
            .build()?;
    let id = Uuid::new_v4();
    accounts
        .handle(
            id,
            &Command::Open {
                owner: "Ada".into(),
            },
        )
        .await?;
    for n in 1..=500 {
        accounts.handle(id, &Command::Deposit { cents: n }).await?;
    }
    match accounts
        .handle(id, &Command::Withdraw { cents: 1_000_000 })
        .await
    {
        Err(DeciderError::Rejected(refused)) => println!("refused, nothing written: {refused}"),
        other => return Err(format!("the withdrawal should have been refused: {other:?}").into()),
    }
    let done = accounts
        .handle(id, &Command::Withdraw { cents: 25_000 })
        .await?;
    println!(
        "withdrew 25,000 cents at version {} ({} attempt)",
        done.version, done.attempts
    );

    let account = accounts.load(id).await?;
    let replayed = DeciderRepository::<BankAccount>::builder(StorePair::events_only(events))
        .build()?
        .load(id)
        .await?;
    if account.state() != replayed.state() {
        return Err("a load through the snapshot differs from a full replay".into());
    }
    let stats = accounts.stats();
    println!(
        "v{}: {} cents, equal to a full replay; {} loads, {} of them from a snapshot; {} snapshots written",
        account.version(),
        account.state().cents,
        stats.loads,
        stats.snapshot_hits,
        stats.snapshots_written
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    match std::env::args().nth(1).as_deref() {
        Some("--memory") => {
            println!("stores: in memory");
            run(
                Arc::new(InMemoryEventStore::new()),
                Arc::new(InMemorySnapshotStore::new()),
            )
            .await
        }
        path => {
            let path = path.map_or_else(
                || std::env::temp_dir().join("snap-es-decider.db"),
                std::path::PathBuf::from,
            );
            println!("stores: SQLite file {}", path.display());
            let database = SqliteDatabase::open(&path).await?;
            run(
                Arc::new(database.event_store()),
                Arc::new(database.snapshot_store()),
            )
            .await
        }
    }
}
