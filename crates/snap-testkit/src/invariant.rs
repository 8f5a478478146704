//! The repository's promise as a property: for any history, strategy, mode and retention, a
//! load through snapshots gives exactly the state of a full replay, now and at any version.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use snap_core::{AggregateId, AggregateRoot, Decider};
use snap_repo::{AggregateRepository, DeciderError, DeciderRepository};
use snap_strategy::{Hybrid, Never, SnapshotMode, Threshold};

use crate::fixtures::new_id;

use crate::RepositoryHarness;
use crate::accounts::{AccountCommand, AccountDecider, AccountEvent, AccountV1};
use crate::model::{config, runtime};
use crate::repository::Rig;

#[derive(Debug, Clone, Copy)]
enum When {
    Threshold(u64),
    Hybrid { min: u64, max: u64, every: u64 },
    Never,
}

#[derive(Debug, Clone)]
enum Op {
    /// Record these amounts (positive: deposit, negative: withdrawal) and save once.
    Save(Vec<i64>),
    /// Record this many deposits and save them at once: streams grow past the first page a
    /// store reads (256 events), so loads take the streamed path too.
    Bulk(u64),
    /// Load the aggregate again and go on from the loaded handle.
    Reload,
    /// `create_snapshot` of the current handle.
    Snapshot,
    /// Wait for background snapshot writes.
    AwaitPending,
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        (1u64..=50).prop_map(When::Threshold),
        (0u64..=5, 5u64..=30, 1u64..=20).prop_map(|(min, max, every)| When::Hybrid {
            min,
            max,
            every
        }),
        Just(When::Never),
    ]
}

fn mode() -> impl Strategy<Value = SnapshotMode> {
    prop_oneof![
        Just(SnapshotMode::Sync),
        Just(SnapshotMode::Background),
        Just(SnapshotMode::Manual),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => vec(prop_oneof![1i64..=100, -50i64..=-1], 1..8).prop_map(Op::Save),
        1 => (200u64..=700).prop_map(Op::Bulk),
        2 => Just(Op::Reload),
        1 => Just(Op::Snapshot),
        1 => Just(Op::AwaitPending),
    ]
}

fn event(amount: i64) -> AccountEvent {
    if amount >= 0 {
        AccountEvent::Deposited { amount }
    } else {
        AccountEvent::Withdrawn { amount: -amount }
    }
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

/// Runs one operation and returns the handle to go on with.
/// What the invariant can run on: the account, as an aggregate or as a decider's state.
trait Account: snap_core::Aggregate<Event = AccountEvent> + PartialEq + std::fmt::Debug {}

impl<A: snap_core::Aggregate<Event = AccountEvent> + PartialEq + std::fmt::Debug> Account for A {}

async fn step_once<A: Account>(
    repo: &AggregateRepository<A>,
    mut root: AggregateRoot<A>,
    step: usize,
    op: &Op,
) -> Result<AggregateRoot<A>, TestCaseError> {
    match op {
        Op::Save(amounts) => {
            for amount in amounts {
                root.record(event(*amount));
            }
            repo.save(&mut root)
                .await
                .map_err(|e| TestCaseError::fail(format!("step {step}: save: {e}")))?;
        }
        Op::Bulk(count) => {
            for n in 0..*count {
                root.record(event(i64::try_from(n % 97).unwrap_or(1) + 1));
            }
            repo.save(&mut root)
                .await
                .map_err(|e| TestCaseError::fail(format!("step {step}: bulk save: {e}")))?;
        }
        Op::Reload => {
            let loaded = repo
                .load(root.id())
                .await
                .map_err(|e| TestCaseError::fail(format!("step {step}: load: {e}")))?;
            check(
                loaded.version() == root.version() && loaded.state() == root.state(),
                || {
                    format!(
                        "step {step}: loaded {loaded:?} {:?}, held {:?}",
                        loaded.state(),
                        root.state()
                    )
                },
            )?;
            root = loaded;
        }
        Op::Snapshot => {
            repo.create_snapshot(&root)
                .await
                .map_err(|e| TestCaseError::fail(format!("step {step}: create_snapshot: {e}")))?;
        }
        Op::AwaitPending => {
            repo.await_pending_snapshots().await;
        }
    }
    Ok(root)
}

async fn run_case<A: Account, H: RepositoryHarness>(
    harness: &H,
    keep: usize,
    when: When,
    mode: SnapshotMode,
    ops: &[Op],
    probes: &[u64],
) -> Result<(), TestCaseError> {
    let rig = Rig::open(harness, keep).await;
    let builder = rig.builder::<A>().mode(mode);
    let builder = match when {
        When::Threshold(n) => builder.strategy(Threshold(n)),
        When::Hybrid { min, max, every } => builder.strategy(Hybrid { min, max, every }),
        When::Never => builder.strategy(Never),
    };
    let repo = builder
        .build()
        .map_err(|e| TestCaseError::fail(format!("build: {e}")))?;
    let replay = rig.replay::<A>();
    let id = &new_id();
    let mut root = repo.create_new(id);
    root.record(AccountEvent::Opened {
        owner: "prop".into(),
    });
    repo.save(&mut root)
        .await
        .map_err(|e| TestCaseError::fail(format!("save: {e}")))?;

    for (step, op) in ops.iter().enumerate() {
        root = step_once(&repo, root, step, op).await?;
    }

    let head = root.version();
    let loaded = repo
        .load(id)
        .await
        .map_err(|e| TestCaseError::fail(format!("load: {e}")))?;
    let replayed = replay
        .load(id)
        .await
        .map_err(|e| TestCaseError::fail(format!("replay: {e}")))?;
    check(
        loaded.version() == head && replayed.version() == head,
        || {
            format!(
                "versions: loaded {}, replayed {}, head {head}",
                loaded.version(),
                replayed.version()
            )
        },
    )?;
    check(loaded.state() == replayed.state(), || {
        format!("load {:?} != replay {:?}", loaded.state(), replayed.state())
    })?;
    repo.await_pending_snapshots().await;
    for probe in probes {
        let version = 1 + probe % head;
        let at = repo
            .load_at(id, version)
            .await
            .map_err(|e| TestCaseError::fail(format!("load_at({version}): {e}")))?;
        let expected = replay
            .load_at(id, version)
            .await
            .map_err(|e| TestCaseError::fail(format!("replay load_at({version}): {e}")))?;
        check(
            at.version() == version && at.state() == expected.state(),
            || {
                format!(
                    "load_at({version}): {:?} v{} != replay {:?}",
                    at.state(),
                    at.version(),
                    expected.state()
                )
            },
        )?;
    }
    let stats = repo.stats();
    check(
        stats.loads == stats.snapshot_hits + stats.full_replays,
        || format!("{stats:?}"),
    )?;
    Ok(())
}

/// Random histories with any strategy (threshold 1..=50, hybrid, never), mode and retention
/// (1..=4): `load` equals a full replay, `load_at(v)` equals a replay to v for random v, and
/// reloading mid-history gives the state the writer holds.
pub fn repository_matches_full_replay<H: RepositoryHarness>(harness: &H) {
    invariant::<AccountV1, H>(harness, "repository_matches_full_replay");
}

/// The same property on the core of the decider repository: an `AggregateRepository` over
/// `Decided<AccountDecider>`, whose state and events are the account's.
pub fn decider_core_matches_full_replay<H: RepositoryHarness>(harness: &H) {
    invariant::<snap_core::Decided<AccountDecider>, H>(harness, "decider_core_matches_full_replay");
}

fn invariant<A: Account, H: RepositoryHarness>(harness: &H, name: &str) {
    if crate::__skip(name, RepositoryHarness::unavailable(harness)).is_some() {
        return;
    }
    let rt = runtime();
    let mut runner = TestRunner::new(config());
    let input = (
        1usize..=4,
        when(),
        mode(),
        vec(op(), 1..30),
        vec(any::<u64>(), 1..6),
    );
    let result = runner.run(&input, |(keep, when, mode, ops, probes)| {
        rt.block_on(run_case::<A, H>(harness, keep, when, mode, &ops, &probes))
    });
    if let Err(error) = result {
        panic!("{name}: a load through snapshots differs from a full replay: {error}");
    }
}

/// Runs the commands through `handle` beside the model, the pure fold of decide and evolve,
/// and returns the model and its version.
async fn handle_all(
    repo: &DeciderRepository<AccountDecider>,
    id: &AggregateId,
    commands: &[AccountCommand],
) -> Result<(AccountV1, u64), TestCaseError> {
    let mut model = AccountDecider::initial_state();
    let mut version = 0_u64;
    for command in commands {
        if model.closed {
            // A terminal account refuses everything at once, and nothing is written.
            let got = repo.handle(id, command).await;
            check(
                matches!(got, Err(DeciderError::Terminal { version: v, .. }) if v == version),
                || format!("{command:?} on a closed account: {got:?}"),
            )?;
            continue;
        }
        let expected = AccountDecider::decide(command, &model);
        match (repo.handle(id, command).await, expected) {
            (Ok(handled), Ok(events)) => {
                version += events.len() as u64;
                check(handled.version == version, || {
                    format!("{command:?}: v{} != v{version}", handled.version)
                })?;
                for event in &events {
                    model = AccountDecider::evolve(model, event);
                }
            }
            (Err(DeciderError::Rejected(got)), Err(want)) => {
                check(got == want, || {
                    format!("{command:?}: refused with {got:?}, not {want:?}")
                })?;
            }
            (got, want) => {
                return Err(TestCaseError::fail(format!(
                    "{command:?}: got {got:?}, the model says {want:?}"
                )));
            }
        }
    }
    Ok((model, version))
}

async fn decider_case<H: RepositoryHarness>(
    harness: &H,
    (keep, when, mode): (usize, When, SnapshotMode),
    commands: &[AccountCommand],
    probes: &[u64],
) -> Result<(), TestCaseError> {
    let rig = Rig::open(harness, keep).await;
    let builder = DeciderRepository::<AccountDecider>::builder(rig.stores()).mode(mode);
    let builder = match when {
        When::Threshold(n) => builder.strategy(Threshold(n)),
        When::Hybrid { min, max, every } => builder.strategy(Hybrid { min, max, every }),
        When::Never => builder.strategy(Never),
    };
    let repo = builder
        .build()
        .map_err(|e| TestCaseError::fail(format!("build: {e}")))?;
    let id = &new_id();
    let (mut model, mut version) = handle_all(&repo, id, commands).await?;
    if version == 0 {
        return Ok(());
    }
    repo.await_pending_snapshots().await;
    if model.closed {
        // Closed: loads say "not found", and the history before the close stays readable.
        let got = repo.load(id).await;
        check(
            matches!(
                got,
                Err(snap_repo::RepositoryError::AggregateNotFound { .. })
            ),
            || format!("load of a closed account: {got:?}"),
        )?;
        version -= 1;
        if version == 0 {
            return Ok(());
        }
        model = rig
            .replay::<AccountV1>()
            .load_at(id, version)
            .await
            .map_err(|e| TestCaseError::fail(format!("replay load_at: {e}")))?
            .into_state();
    }
    let loaded = repo
        .load_at(id, version)
        .await
        .map_err(|e| TestCaseError::fail(format!("load: {e}")))?;
    let replayed = rig
        .replay::<AccountV1>()
        .load_at(id, version)
        .await
        .map_err(|e| TestCaseError::fail(format!("replay: {e}")))?;
    check(
        loaded.version() == version && loaded.state().0 == model && replayed.state() == &model,
        || {
            format!(
                "load {:?} / replay {:?} / model {model:?}",
                loaded.state(),
                replayed.state()
            )
        },
    )?;
    for probe in probes {
        let at = 1 + probe % version;
        let through = repo
            .load_at(id, at)
            .await
            .map_err(|e| TestCaseError::fail(format!("load_at: {e}")))?;
        let replayed = rig
            .replay::<AccountV1>()
            .load_at(id, at)
            .await
            .map_err(|e| TestCaseError::fail(format!("replay load_at: {e}")))?;
        check(&through.state().0 == replayed.state(), || {
            format!("load_at({at}) differs")
        })?;
    }
    Ok(())
}

/// Random commands through a [`DeciderRepository`](snap_repo::DeciderRepository) with any
/// strategy, mode and retention: every accepted command is applied once, every rejected one
/// leaves no trace, and `load` and `load_at` equal a full replay and the pure fold of
/// `decide` and `evolve`.
pub fn decider_repository_matches_full_replay<H: RepositoryHarness>(harness: &H) {
    if crate::__skip(
        "decider_repository_matches_full_replay",
        RepositoryHarness::unavailable(harness),
    )
    .is_some()
    {
        return;
    }
    let command = prop_oneof![
        1 => Just(AccountCommand::Open("prop".into())),
        4 => (1i64..=100).prop_map(AccountCommand::Deposit),
        3 => (1i64..=150).prop_map(AccountCommand::Withdraw),
        1 => Just(AccountCommand::Close),
    ];
    let input = (
        1usize..=4,
        when(),
        mode(),
        vec(command, 1..40),
        vec(any::<u64>(), 1..5),
    );
    let rt = runtime();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&input, |(keep, when, mode, commands, probes)| {
        rt.block_on(async { decider_case(harness, (keep, when, mode), &commands, &probes).await })
    });
    if let Err(error) = result {
        panic!("the decider repository diverged from a full replay: {error}");
    }
}
