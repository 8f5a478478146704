//! Decider repository cases: `handle` on every backend.

use snap_core::{Decided, EventStore, SnapshotStore};
use snap_repo::{DeciderError, DeciderRepository};
use snap_strategy::{SnapshotMode, Threshold};

use crate::fixtures::new_id;

use crate::RepositoryHarness;
use crate::accounts::{AccountCommand, AccountDecider, AccountRefusal, AccountV1};
use crate::repository::Rig;

fn decider<H: RepositoryHarness>(
    rig: &Rig<H>,
    mode: SnapshotMode,
) -> DeciderRepository<AccountDecider> {
    DeciderRepository::<AccountDecider>::builder(rig.stores())
        .strategy(Threshold(1))
        .mode(mode)
        .build()
        .expect("a valid repository")
}

/// A command `decide` rejects appends nothing and writes no snapshot; an accepted one appends
/// its events and snapshots per the strategy.
pub async fn decider_rejected_command_appends_nothing<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = decider(&rig, SnapshotMode::Sync);
    let id = &new_id();
    assert!(matches!(
        repo.handle(id, &AccountCommand::Deposit(5)).await,
        Err(DeciderError::Rejected(AccountRefusal::NotOpen))
    ));
    assert_eq!(rig.events.current_version(id, "Account").await.unwrap(), 0);
    let opened = repo
        .handle(id, &AccountCommand::Open("ada".into()))
        .await
        .unwrap();
    assert_eq!((opened.version, opened.attempts), (1, 1));
    repo.handle(id, &AccountCommand::Deposit(10)).await.unwrap();
    let written = rig.snapshots.written_versions();
    assert_eq!(written, vec![1, 2]);
    assert!(matches!(
        repo.handle(id, &AccountCommand::Withdraw(50)).await,
        Err(DeciderError::Rejected(AccountRefusal::InsufficientFunds {
            balance: 10,
            asked: 50
        }))
    ));
    assert_eq!(rig.events.current_version(id, "Account").await.unwrap(), 2);
    assert_eq!(
        rig.snapshots.written_versions(),
        written,
        "no snapshot for a rejected command"
    );
    let loaded = repo.load(id).await.unwrap();
    assert_eq!((loaded.version(), loaded.state().balance), (2, 10));
    assert_eq!(repo.stats().saves, 2);
}

/// Two `handle` calls on one aggregate, decided on the same version and appended together:
/// one commits, the other reloads, decides again on the new state and commits after it.
pub async fn decider_concurrent_handles_both_succeed<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = decider(&rig, SnapshotMode::Background);
    let id = &new_id();
    repo.handle(id, &AccountCommand::Open("ada".into()))
        .await
        .unwrap();
    repo.handle(id, &AccountCommand::Deposit(10)).await.unwrap();
    rig.events.hold_appends(2);
    let (first, second) = tokio::join!(
        repo.handle(id, &AccountCommand::Deposit(5)),
        repo.handle(id, &AccountCommand::Deposit(7)),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let mut attempts = [first.attempts, second.attempts];
    attempts.sort_unstable();
    assert_eq!(attempts, [1, 2], "exactly one retried");
    let mut versions = [first.version, second.version];
    versions.sort_unstable();
    assert_eq!(versions, [3, 4]);
    let loaded = repo.load(id).await.unwrap();
    assert_eq!((loaded.version(), loaded.state().balance), (4, 22));
    assert_eq!(repo.stats().conflicts, 1);

    // The retry decides on the events the other writer committed: no blind overwrite.
    rig.events.hold_appends(2);
    let (first, second) = tokio::join!(
        repo.handle(id, &AccountCommand::Withdraw(15)),
        repo.handle(id, &AccountCommand::Withdraw(15)),
    );
    let refused = [&first, &second]
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(DeciderError::Rejected(AccountRefusal::InsufficientFunds {
                    balance: 7,
                    asked: 15
                }))
            )
        })
        .count();
    assert_eq!(refused, 1, "{first:?} {second:?}");
    repo.await_pending_snapshots().await;
    let loaded = repo.load(id).await.unwrap();
    assert_eq!((loaded.version(), loaded.state().balance), (5, 7));
    let replayed = rig.replay::<AccountV1>().load(id).await.unwrap();
    assert_eq!(replayed.state(), &loaded.state().0);
    let stored = rig
        .snapshots
        .get_snapshot(id, "Account")
        .await
        .unwrap()
        .unwrap();
    let _: Decided<AccountDecider> = serde_json::from_value(stored.state).unwrap();
}

/// A command to a closed (terminal) account is refused at once as
/// [`DeciderError::Terminal`]: decided once, nothing appended, no conflict counted, no retry.
pub async fn decider_command_to_a_closed_account_is_refused_at_once<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = decider(&rig, SnapshotMode::Sync);
    let id = &new_id();
    repo.handle(id, &AccountCommand::Open("ada".into()))
        .await
        .unwrap();
    repo.handle(id, &AccountCommand::Deposit(10)).await.unwrap();
    let closed = repo.handle(id, &AccountCommand::Close).await.unwrap();
    assert_eq!(closed.version, 3);
    let appends = rig.events.appends();
    for command in [
        AccountCommand::Deposit(5),
        AccountCommand::Open("bob".into()),
        AccountCommand::Close,
    ] {
        match repo.handle(id, &command).await {
            Err(DeciderError::Terminal {
                aggregate_id,
                aggregate_type,
                version,
            }) => assert_eq!((&aggregate_id, aggregate_type, version), (id, "Account", 3)),
            other => panic!("{command:?} on a closed account: {other:?}"),
        }
    }
    assert_eq!(rig.events.appends(), appends, "nothing was appended");
    assert_eq!(rig.events.current_version(id, "Account").await.unwrap(), 3);
    let stats = repo.stats();
    assert_eq!((stats.conflicts, stats.saves), (0, 3), "{stats:?}");
    // Loads still say "not found", as for a discarded aggregate.
    assert!(matches!(
        repo.load(id).await,
        Err(snap_repo::RepositoryError::AggregateNotFound { .. })
    ));
}
