//! A bank account, event-sourced, through the aggregate repository.
//!
//! Run it with `cargo run --example bank_account`. It shows, on one pair of stores:
//!
//! 1. **sync** snapshots: 1,000 transactions with `Threshold(100)`; the load starts from the
//!    snapshot at 1,000 and replays only what came after it;
//! 2. **background** snapshots: saves return at once, a writer stores the snapshots, and
//!    `await_pending_snapshots` waits for it;
//! 3. **manual** snapshots: nothing is written until `create_snapshot`;
//! 4. **schema evolution**: version 2 of the account keeps the balance in cents. With a
//!    migration 1 -> 2 the old snapshot is migrated and used; without one the load falls back
//!    to a full replay. Every load is checked against a full replay: the example exits
//!    non-zero if any differs.
//!
//! The stores live in a SQLite file in the system's temp directory (the example prints its
//! path); pass a path to use another file, or `--memory` for the in-memory stores.

#![allow(clippy::print_stdout, reason = "an example reports on its terminal")]

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use snap_es::prelude::*;
use snap_es::{DynEventStore, DynSnapshotStore};

/// Version 1 of the account: the balance in whole euros.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    owner: String,
    balance: i64,
    transactions: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum AccountEvent {
    Opened { owner: String },
    Deposited { euros: i64 },
    Withdrawn { euros: i64 },
}

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner.clone_from(owner),
            AccountEvent::Deposited { euros } => {
                self.balance += euros;
                self.transactions += 1;
            }
            AccountEvent::Withdrawn { euros } => {
                self.balance -= euros;
                self.transactions += 1;
            }
        }
    }
}

/// Version 2: the balance in cents. Same type name, same events, a new state shape.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct AccountV2 {
    owner: String,
    balance_cents: i64,
    transactions: u64,
}

impl Aggregate for AccountV2 {
    const TYPE: &'static str = "Account";
    const SCHEMA_VERSION: u32 = 2;
    type Event = AccountEvent;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner.clone_from(owner),
            AccountEvent::Deposited { euros } => {
                self.balance_cents += euros * 100;
                self.transactions += 1;
            }
            AccountEvent::Withdrawn { euros } => {
                self.balance_cents -= euros * 100;
                self.transactions += 1;
            }
        }
    }
}

/// Schema 1 -> 2: `balance` in euros becomes `balance_cents`.
fn euros_to_cents() -> SnapshotMigration {
    SnapshotMigration::new(1, 2, |mut state| {
        let euros = state["balance"]
            .as_i64()
            .ok_or("a schema 1 account has a balance")?;
        let fields = state.as_object_mut().ok_or("a state is an object")?;
        fields.remove("balance");
        fields.insert("balance_cents".into(), (euros * 100).into());
        Ok(state)
    })
}

type Error = Box<dyn std::error::Error>;

#[derive(Clone)]
struct Stores {
    events: Arc<DynEventStore>,
    snapshots: Arc<DynSnapshotStore>,
}

impl Stores {
    fn repo<A: Aggregate>(&self) -> snap_es::RepositoryBuilder<A> {
        AggregateRepository::<A>::builder(StorePair::new(
            Arc::clone(&self.events),
            Arc::clone(&self.snapshots),
        ))
    }

    /// A repository without snapshots: the full replay every load is checked against.
    fn replay<A: Aggregate>(&self) -> Result<AggregateRepository<A>, Error> {
        Ok(
            AggregateRepository::<A>::builder(StorePair::events_only(Arc::clone(&self.events)))
                .build()?,
        )
    }
}

/// Loads `id` through `repo` and through a full replay; they must agree.
async fn checked_load<A>(
    stores: &Stores,
    repo: &AggregateRepository<A>,
    id: Uuid,
) -> Result<AggregateRoot<A>, Error>
where
    A: Aggregate + PartialEq + std::fmt::Debug,
{
    let loaded = repo.load(id).await?;
    let replayed = stores.replay::<A>()?.load(id).await?;
    if loaded.version() != replayed.version() || loaded.state() != replayed.state() {
        return Err(format!(
            "a load through the snapshot differs from a full replay: {:?} != {:?}",
            loaded.state(),
            replayed.state()
        )
        .into());
    }
    Ok(loaded)
}

/// Opens an account and commits `transactions` deposits and withdrawals, `per_save` at a time.
async fn open_account(
    repo: &AggregateRepository<Account>,
    owner: &str,
    transactions: i64,
    per_save: usize,
) -> Result<Uuid, Error> {
    let id = Uuid::new_v4();
    let mut account = repo.create_new(id);
    account.record(AccountEvent::Opened {
        owner: owner.into(),
    });
    for n in 1..=transactions {
        account.record(if n % 4 == 0 {
            AccountEvent::Withdrawn { euros: n % 50 }
        } else {
            AccountEvent::Deposited { euros: n % 100 }
        });
        if account.uncommitted().len() >= per_save {
            repo.save(&mut account).await?;
        }
    }
    repo.save(&mut account).await?;
    Ok(id)
}

async fn sync_mode(stores: &Stores) -> Result<Uuid, Error> {
    let repo = stores
        .repo::<Account>()
        .strategy(Threshold(100))
        .mode(SnapshotMode::Sync)
        .build()?;
    let id = open_account(&repo, "Ada", 1_006, 10).await?;
    let account = checked_load(stores, &repo, id).await?;
    let stats = repo.stats();
    println!(
        "sync:       v{} balance {} EUR; {} snapshots written, the load replayed {} events after the snapshot",
        account.version(),
        account.state().balance,
        stats.snapshots_written,
        stats.events_replayed
    );
    Ok(id)
}

async fn background_mode(stores: &Stores) -> Result<(), Error> {
    let repo = stores
        .repo::<Account>()
        .policy(create_snapshot_strategy("background", 50)?)
        .build()?;
    let id = open_account(&repo, "Grace", 500, 1).await?;
    let pending = repo.pending_snapshot_count();
    let waited = repo.await_pending_snapshots().await;
    let account = checked_load(stores, &repo, id).await?;
    let stats = repo.stats();
    println!(
        "background: v{}; {pending} writes pending after the last save, waited for {waited}; {} written, {} requests coalesced",
        account.version(),
        stats.snapshots_written,
        stats.snapshots_coalesced
    );
    Ok(())
}

async fn manual_mode(stores: &Stores) -> Result<(), Error> {
    let repo = stores
        .repo::<Account>()
        .policy(create_snapshot_strategy(SnapshotMode::Manual, 1)?)
        .build()?;
    let id = open_account(&repo, "Edsger", 300, 1).await?;
    let before = stores
        .snapshots
        .snapshot_exists(&id.into(), Account::TYPE)
        .await?;
    let account = repo.load(id).await?;
    let snapshot = repo.create_snapshot(&account).await?;
    checked_load(stores, &repo, id).await?;
    println!(
        "manual:     no snapshot after 301 saves ({before}); create_snapshot wrote {snapshot}"
    );
    Ok(())
}

async fn schema_evolution(stores: &Stores, id: Uuid) -> Result<(), Error> {
    let migrating = stores
        .repo::<AccountV2>()
        .migrations(MigrationChain::new(vec![euros_to_cents()], 2)?)
        .build()?;
    let account = checked_load(stores, &migrating, id).await?;
    let stats = migrating.stats();
    println!(
        "schema v2:  with a migration 1 -> 2 the snapshot was migrated and used ({} migrated, {} events replayed); balance {} cents",
        stats.snapshots_migrated,
        stats.events_replayed,
        account.state().balance_cents
    );

    let id = open_account(&stores.repo::<Account>().build()?, "Barbara", 1_000, 100).await?;
    let unmigrated = stores.repo::<AccountV2>().build()?;
    checked_load(stores, &unmigrated, id).await?;
    let stats = unmigrated.stats();
    println!(
        "schema v2:  without a migration the schema 1 snapshot was set aside ({} full replay, {} events)",
        stats.fallbacks.schema_mismatch, stats.events_replayed
    );
    Ok(())
}

async fn run(stores: Stores) -> Result<(), Error> {
    let id = sync_mode(&stores).await?;
    background_mode(&stores).await?;
    manual_mode(&stores).await?;
    schema_evolution(&stores, id).await?;
    println!("every load matched a full replay");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let stores = match std::env::args().nth(1).as_deref() {
        Some("--memory") => {
            println!("stores: in memory");
            Stores {
                events: Arc::new(InMemoryEventStore::new()),
                snapshots: Arc::new(InMemorySnapshotStore::new()),
            }
        }
        path => {
            let path = path.map_or_else(
                || std::env::temp_dir().join("snap-es-bank-account.db"),
                std::path::PathBuf::from,
            );
            println!("stores: SQLite file {}", path.display());
            let database = SqliteDatabase::open(&path).await?;
            Stores {
                events: Arc::new(database.event_store()),
                snapshots: Arc::new(database.snapshot_store()),
            }
        }
    };
    run(stores).await
}
