//! A bank account, event-sourced, loaded through a snapshot.
//!
//! Run it with `cargo run --example bank_account`. It opens an account, commits 1,000
//! deposits and withdrawals, snapshots the account at version 1,000, commits 7 more events,
//! then loads the account twice: by full replay, and from the snapshot plus the 7 events after
//! it. Both loads must give the same state; the example exits non-zero if they do not.
//!
//! The stores live in a SQLite file in the system's temp directory (the example prints its
//! path); pass a path to use another file, or `--memory` for the in-memory stores.

#![allow(clippy::print_stdout, reason = "an example reports on its terminal")]

use serde::{Deserialize, Serialize};
use snap_es::prelude::*;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    owner: String,
    balance_cents: i64,
    transactions: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum AccountEvent {
    Opened { owner: String },
    Deposited { cents: i64 },
    Withdrawn { cents: i64 },
}

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner.clone_from(owner),
            AccountEvent::Deposited { cents } => {
                self.balance_cents += cents;
                self.transactions += 1;
            }
            AccountEvent::Withdrawn { cents } => {
                self.balance_cents -= cents;
                self.transactions += 1;
            }
        }
    }
}

type Error = Box<dyn std::error::Error>;

/// Appends the account's uncommitted events with optimistic concurrency.
async fn save(events: &impl EventStore, account: &mut AggregateRoot<Account>) -> Result<(), Error> {
    let new = account.uncommitted_as_new_events()?;
    events
        .append(account.id(), Account::TYPE, account.version(), new)
        .await?;
    account.mark_committed();
    Ok(())
}

/// Replays `events` after the root's version onto it.
async fn catch_up(
    events: &impl EventStore,
    root: &mut AggregateRoot<Account>,
) -> Result<usize, Error> {
    let later = events
        .load(root.id(), Account::TYPE, root.version(), None)
        .await?;
    for event in &later {
        root.apply_recorded(event)?;
    }
    Ok(later.len())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    match std::env::args().nth(1).as_deref() {
        Some("--memory") => {
            println!("stores: in memory");
            run(InMemoryEventStore::new(), InMemorySnapshotStore::new()).await
        }
        path => {
            let path = path.map_or_else(
                || std::env::temp_dir().join("snap-es-bank-account.db"),
                Into::into,
            );
            let database = SqliteDatabase::open(&path).await?;
            println!("stores: SQLite file {}", path.display());
            run(database.event_store(), database.snapshot_store()).await
        }
    }
}

async fn run(events: impl EventStore, snapshots: impl SnapshotStore) -> Result<(), Error> {
    let id = Uuid::new_v4();

    let mut account = AggregateRoot::<Account>::new(id);
    account.record(AccountEvent::Opened {
        owner: "Ada".into(),
    });
    for i in 1..1_000 {
        account.record(if i % 3 == 0 {
            AccountEvent::Withdrawn { cents: 250 }
        } else {
            AccountEvent::Deposited { cents: 1_000 }
        });
    }
    save(&events, &mut account).await?;

    let snapshot = account.to_snapshot()?;
    snapshots.save_snapshot(&snapshot).await?;
    println!("saved {snapshot}");

    for _ in 0..7 {
        account.record(AccountEvent::Deposited { cents: 1 });
    }
    save(&events, &mut account).await?;

    let mut replayed = AggregateRoot::<Account>::new(id);
    let replayed_events = catch_up(&events, &mut replayed).await?;

    let stored = snapshots
        .get_snapshot(id, Account::TYPE)
        .await?
        .ok_or("snapshot missing")?;
    let mut fast = AggregateRoot::<Account>::from_snapshot(&stored)?;
    let fast_events = catch_up(&events, &mut fast).await?;

    println!(
        "full replay:   {replayed_events} events -> v{} {:?}",
        replayed.version(),
        replayed.state()
    );
    println!(
        "from snapshot: {fast_events} events -> v{} {:?}",
        fast.version(),
        fast.state()
    );
    if fast.state() != replayed.state() || fast.version() != replayed.version() {
        return Err("the snapshot load differs from the full replay".into());
    }
    println!(
        "identical state, {}x fewer events replayed",
        replayed_events / fast_events.max(1)
    );
    Ok(())
}
