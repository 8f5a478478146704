//! Repository cases: DESIGN.md sections 5 to 7 and CONFORMANCE.md groups C to F, run on the
//! stores of any backend, wrapped in [`faults`](crate::faults) where a case needs a fault.

use std::future::Future;
use std::sync::Arc;

use snap_core::{
    Aggregate, AggregateId, AggregateRoot, DynBackend, EventStore, MigrationChain, Snapshot,
    SnapshotStore,
};
use snap_repo::{
    AggregateRepository, BuildError, FallbackReason, RepositoryBuilder, RepositoryError,
    SnapshotCheck, StorePair,
};
use snap_strategy::{Hybrid, Never, ReplayBudget, SnapshotMode, Threshold};

use crate::fixtures::new_id;

use crate::accounts::{
    AccountEvent, AccountModel, AccountV1, AccountV2, AccountV3, DriftedAccount, failing_to_v2,
    history, to_v2, to_v3,
};
use crate::faults::{FaultySnapshotStore, RecordingEventStore};
use crate::{FaultyBackend, RepositoryHarness};

/// The event store every case uses: the backend's, recording its loads.
pub type Events<H> = Arc<RecordingEventStore<<H as RepositoryHarness>::Events>>;
/// The snapshot store every case uses: the backend's, with faults on demand.
pub type Snapshots<H> = Arc<FaultySnapshotStore<<H as RepositoryHarness>::Snapshots>>;

/// A backend's stores, wrapped, and builders of repositories over them.
pub struct Rig<H: RepositoryHarness> {
    /// The event store.
    pub events: Events<H>,
    /// The snapshot store.
    pub snapshots: Snapshots<H>,
    /// The backend's own `Backend`, when the cases run on it ([`crate::Native`]).
    pub native: Option<Arc<DynBackend>>,
}

impl<H: RepositoryHarness> std::fmt::Debug for Rig<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig")
            .field("events", &self.events)
            .field("snapshots", &self.snapshots)
            .field("native", &self.native)
            .finish()
    }
}

impl<H: RepositoryHarness> Rig<H> {
    /// Fresh stores keeping `keep_history` snapshots per aggregate.
    pub async fn open(harness: &H, keep_history: usize) -> Self {
        let stores = harness.open(keep_history).await;
        let native = if harness.use_native() {
            let native = harness.native(&stores, keep_history);
            assert!(native.is_some(), "the harness has no native backend");
            native
        } else {
            None
        };
        let (events, snapshots) = stores;
        Self {
            events: Arc::new(RecordingEventStore::new(events)),
            snapshots: Arc::new(FaultySnapshotStore::new(snapshots)),
            native,
        }
    }

    /// The backend the repositories use: the backend's own behind the faults, or both stores
    /// as a [`StorePair`].
    pub fn stores(&self) -> Arc<DynBackend> {
        match &self.native {
            Some(native) => Arc::new(FaultyBackend::new(
                Arc::clone(native),
                Arc::clone(&self.events),
                Arc::clone(&self.snapshots),
            )),
            None => Arc::new(StorePair::new(
                Arc::clone(&self.events),
                Arc::clone(&self.snapshots),
            )),
        }
    }

    /// A builder with both stores set.
    pub fn builder<A: Aggregate>(&self) -> RepositoryBuilder<A> {
        AggregateRepository::<A>::builder(self.stores())
    }

    /// A repository with both stores, a strategy and a mode.
    pub fn repo<A: Aggregate>(
        &self,
        strategy: impl snap_strategy::SnapshotStrategy,
        mode: SnapshotMode,
    ) -> AggregateRepository<A> {
        self.builder::<A>()
            .strategy(strategy)
            .mode(mode)
            .build()
            .expect("a valid repository")
    }

    /// A repository without snapshots: the full replay every load must equal.
    pub fn replay<A: Aggregate>(&self) -> AggregateRepository<A> {
        AggregateRepository::<A>::builder(StorePair::events_only(Arc::clone(&self.events)))
            .build()
            .expect("a valid repository")
    }
}

/// Records `events` on the root and saves them in one save.
pub async fn commit<A: Aggregate>(
    repo: &AggregateRepository<A>,
    root: &mut AggregateRoot<A>,
    events: impl IntoIterator<Item = A::Event>,
) -> u64 {
    for event in events {
        root.record(event);
    }
    repo.save(root).await.expect("save")
}

/// Saves each event on its own.
async fn commit_each<A: Aggregate>(
    repo: &AggregateRepository<A>,
    root: &mut AggregateRoot<A>,
    events: impl IntoIterator<Item = A::Event>,
) {
    for event in events {
        commit(repo, root, [event]).await;
    }
}

/// Polls a future once: whether it is still pending.
async fn still_pending<F: Future>(future: std::pin::Pin<&mut F>) -> bool {
    let mut future = future;
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_pending())).await
}

/// Starts waiting for the background writes while the gate holds them, then opens the gate:
/// the count cannot depend on how fast the writes are.
async fn open_gate_and_wait<A: Aggregate, H: RepositoryHarness>(
    rig: &Rig<H>,
    repo: &AggregateRepository<A>,
) -> usize {
    let mut wait = std::pin::pin!(repo.await_pending_snapshots());
    assert!(
        still_pending(wait.as_mut()).await,
        "the writes wait for the gate"
    );
    rig.snapshots.open_gate();
    wait.await
}

/// Stores a schema 1 snapshot at version 10, ahead of a stream of 3 events.
async fn store_ahead<H: RepositoryHarness>(rig: &Rig<H>, id: &AggregateId, owner: &str) {
    let ahead = AccountV1 {
        owner: owner.into(),
        balance: 1_000_000,
        deposits: 99,
        closed: false,
    };
    let snapshot = Snapshot::new(id, "Account", 10, serde_json::to_value(&ahead).unwrap(), 1);
    rig.snapshots.save_snapshot(&snapshot).await.unwrap();
}

fn deposit(amount: i64) -> AccountEvent {
    AccountEvent::Deposited { amount }
}

/// An account with `deposits` deposits, saved event by event through a repository that
/// snapshots at `snapshot_at` (and nowhere else).
async fn account_with_snapshot<H: RepositoryHarness, M: AccountModel>(
    rig: &Rig<H>,
    deposits: u64,
    snapshot_at: u64,
) -> AggregateId {
    let id = new_id();
    let repo = rig.repo::<M>(Never, SnapshotMode::Manual);
    let mut root = repo.create_new(&id);
    let events = history("ada", deposits);
    let (before, after) = events.split_at(usize::try_from(snapshot_at).expect("small"));
    commit(&repo, &mut root, before.to_vec()).await;
    repo.create_snapshot(&root).await.expect("create_snapshot");
    commit(&repo, &mut root, after.to_vec()).await;
    id
}

async fn assert_same_as_replay<A, H>(rig: &Rig<H>, loaded: &AggregateRoot<A>)
where
    A: Aggregate + PartialEq + std::fmt::Debug,
    H: RepositoryHarness,
{
    let replayed = rig
        .replay::<A>()
        .load(loaded.id())
        .await
        .expect("full replay");
    assert_eq!(
        loaded.version(),
        replayed.version(),
        "version differs from a full replay"
    );
    assert_eq!(
        loaded.state(),
        replayed.state(),
        "state differs from a full replay"
    );
}

// --- C. Faults and bad input -------------------------------------------------------------

/// C18: a snapshot the store cannot decode: the load replays, with the right state, and the
/// fallback is counted as corruption.
pub async fn corrupt_snapshot_falls_back_to_replay<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let id = &account_with_snapshot::<H, M>(&rig, 12, 10).await;
    rig.snapshots.corrupt_gets(true);
    let repo = rig.repo::<M>(Threshold(100), SnapshotMode::Sync);
    let loaded = repo
        .load(id)
        .await
        .expect("a corrupt snapshot never fails a load");
    assert_same_as_replay(&rig, &loaded).await;
    let stats = repo.stats();
    assert_eq!((stats.full_replays, stats.snapshot_hits), (1, 0));
    assert_eq!(stats.fallbacks.corrupt_snapshot, 1);
    assert_eq!(stats.fallbacks.store_error, 0);
    assert_eq!(stats.events_replayed, 13);
}

/// C19: a snapshot store outage on read: the load replays; counted apart from corruption.
pub async fn snapshot_store_outage_falls_back_to_replay<H: RepositoryHarness, M: AccountModel>(
    h: &H,
) {
    let rig = Rig::open(h, 1).await;
    let id = &account_with_snapshot::<H, M>(&rig, 12, 10).await;
    rig.snapshots.fail_gets(true);
    let repo = rig.repo::<M>(Threshold(100), SnapshotMode::Sync);
    let loaded = repo.load(id).await.expect("an outage never fails a load");
    assert_same_as_replay(&rig, &loaded).await;
    let stats = repo.stats();
    assert_eq!(stats.fallbacks.store_error, 1);
    assert_eq!(stats.fallbacks.corrupt_snapshot, 0);
    rig.snapshots.fail_gets(false);
    repo.load(id).await.expect("load");
    assert_eq!(
        repo.stats().snapshot_hits,
        1,
        "the snapshot is used once readable"
    );
}

/// C20: a failing snapshot write in sync mode: the save succeeds, the events are committed,
/// the failure is counted.
pub async fn failing_snapshot_write_keeps_the_save<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    rig.snapshots.fail_saves(true);
    let repo = rig.repo::<M>(Threshold(2), SnapshotMode::Sync);
    let id = &new_id();
    let mut root = repo.create_new(id);
    let version = commit(&repo, &mut root, history("ada", 3)).await;
    assert_eq!(version, 4);
    assert_eq!(rig.events.current_version(id, "Account").await.unwrap(), 4);
    let stats = repo.stats();
    assert_eq!((stats.snapshot_failures, stats.snapshots_written), (1, 0));
    assert!(rig.snapshots.written().is_empty());
    assert_eq!(repo.load(id).await.expect("load").version(), 4);
}

/// C21: no snapshot and no events is not found; a snapshot without events too.
pub async fn missing_aggregate_is_not_found<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(10), SnapshotMode::Sync);
    let id = &new_id();
    assert!(matches!(
        repo.load(id).await,
        Err(RepositoryError::AggregateNotFound { aggregate_id, .. }) if aggregate_id == *id
    ));
    let orphan = Snapshot::new(
        id,
        "Account",
        5,
        serde_json::to_value(M::default()).unwrap(),
        1,
    );
    rig.snapshots.save_snapshot(&orphan).await.unwrap();
    assert!(matches!(
        repo.load(id).await,
        Err(RepositoryError::AggregateNotFound { .. })
    ));
    assert!(matches!(
        repo.load_at(id, 3).await,
        Err(RepositoryError::AggregateNotFound { .. })
    ));
}

/// C21: a snapshot newer than the last event is distrusted: full replay, counted.
pub async fn snapshot_ahead_of_the_stream_is_ignored<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(100), SnapshotMode::Sync);
    let id = &new_id();
    let mut root = repo.create_new(id);
    commit(&repo, &mut root, history("ada", 2)).await;
    store_ahead(&rig, id, "mallory").await;
    let loaded = repo.load(id).await.expect("load");
    assert_eq!(loaded.version(), 3);
    assert_eq!(loaded.state().account().owner, "ada");
    assert_eq!(loaded.state().account().balance, 3);
    assert_eq!(repo.stats().fallbacks.snapshot_ahead, 1);
}

/// C22: a replay over a stream whose start is gone (archived) is an error, never a state.
pub async fn archived_history_is_an_error<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let id = &account_with_snapshot::<H, M>(&rig, 20, 10).await;
    rig.events.archive_through(10);
    let repo = rig.repo::<M>(Threshold(100), SnapshotMode::Sync);
    let loaded = repo
        .load(id)
        .await
        .expect("the snapshot covers the archived part");
    assert_eq!(loaded.version(), 21);
    rig.snapshots.fail_gets(true);
    assert!(matches!(
        repo.load(id).await,
        Err(RepositoryError::Replay(
            snap_core::ReplayError::VersionGap {
                expected: 1,
                found: 11,
                ..
            }
        ))
    ));
}

/// An aggregate whose schema version is 0.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SchemaZero;

impl Aggregate for SchemaZero {
    const TYPE: &'static str = "SchemaZero";
    const SCHEMA_VERSION: u32 = 0;
    type Event = AccountEvent;
    fn apply(&mut self, _: &AccountEvent) {}
}

/// An aggregate with an empty type name.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Nameless;

impl Aggregate for Nameless {
    const TYPE: &'static str = "";
    type Event = AccountEvent;
    fn apply(&mut self, _: &AccountEvent) {}
}

/// C23: invalid settings fail at `build()`, invalid names at the call, all typed.
pub async fn invalid_configuration_is_refused<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let refused = |result: Result<AggregateRepository<AccountV1>, BuildError>| {
        matches!(result, Err(BuildError::Strategy(_)))
    };
    assert!(refused(
        rig.builder::<AccountV1>().strategy(Threshold(0)).build()
    ));
    assert!(refused(
        rig.builder::<AccountV1>()
            .strategy(Hybrid {
                min: 10,
                max: 5,
                every: 5
            })
            .build()
    ));
    assert!(refused(
        rig.builder::<AccountV1>()
            .strategy(ReplayBudget(std::time::Duration::ZERO))
            .build()
    ));
    assert!(
        rig.builder::<AccountV1>()
            .strategy(Threshold(1))
            .build()
            .is_ok()
    );
    assert!(matches!(
        rig.builder::<SchemaZero>().build(),
        Err(BuildError::SchemaVersionZero { .. })
    ));
    let chain = MigrationChain::new(vec![to_v2()], 2).unwrap();
    assert!(matches!(
        rig.builder::<AccountV3>().migrations(chain).build(),
        Err(BuildError::ChainMismatch {
            chain: 2,
            aggregate: 3,
            ..
        })
    ));
    let nameless = rig.builder::<Nameless>().build().expect("build");
    let mut root = nameless.create_new(new_id());
    root.record(deposit(1));
    assert!(matches!(
        nameless.save(&mut root).await,
        Err(RepositoryError::EventStore(
            snap_core::EventStoreError::InvalidInput(_)
        ))
    ));
    assert_eq!(
        root.uncommitted().len(),
        1,
        "a refused save keeps the events"
    );
}

/// A snapshot read slower than the repository's timeout is abandoned: the load replays and
/// counts a store error.
pub async fn slow_snapshot_reads_time_out_into_replay<H: RepositoryHarness, M: AccountModel>(
    h: &H,
) {
    let rig = Rig::open(h, 1).await;
    let id = &account_with_snapshot::<H, M>(&rig, 12, 10).await;
    rig.snapshots.delay_gets(std::time::Duration::from_secs(30));
    let repo = rig
        .builder::<M>()
        .snapshot_timeout(std::time::Duration::from_millis(50))
        .build()
        .unwrap();
    let loaded = repo
        .load(id)
        .await
        .expect("a slow snapshot store never fails a load");
    assert_eq!(repo.stats().fallbacks.store_error, 1);
    rig.snapshots.delay_gets(std::time::Duration::ZERO);
    assert_same_as_replay(&rig, &loaded).await;
}

/// A snapshot store that fails every third call: every load still returns the state of a
/// full replay, every save commits, and every injected failure is counted.
pub async fn flaky_snapshot_store_never_breaks_loads_or_saves<
    H: RepositoryHarness,
    M: AccountModel,
>(
    h: &H,
) {
    let rig = Rig::open(h, 1).await;
    rig.snapshots.fail_every(3);
    let repo = rig.repo::<M>(Threshold(2), SnapshotMode::Sync);
    let ids: Vec<AggregateId> = (0..4).map(|_| new_id()).collect();
    for id in &ids {
        let mut root = repo.create_new(id);
        commit(&repo, &mut root, history("ada", 0)).await;
    }
    for round in 0..15_i64 {
        for id in &ids {
            let mut root = repo.load(id).await.expect("load");
            commit(&repo, &mut root, [deposit(round + 1)]).await;
        }
    }
    for id in &ids {
        let loaded = repo.load(id).await.expect("load");
        assert_eq!(loaded.version(), 16);
        assert_same_as_replay(&rig, &loaded).await;
    }
    let stats = repo.stats();
    assert!(rig.snapshots.injected() > 10, "failures were injected");
    assert_eq!(
        stats.fallbacks.store_error + stats.snapshot_failures,
        rig.snapshots.injected(),
        "every injected failure is counted: {stats:?}"
    );
}

/// 32 tasks run 200 commands each on 8 aggregates through one repository in background
/// mode, reloading and retrying on `Concurrency`. Every command lands exactly once, every
/// aggregate loads to the state of a full replay, and no stored snapshot ever moves back.
pub async fn concurrent_commands_lose_nothing<H: RepositoryHarness, M: AccountModel>(h: &H) {
    const TASKS: usize = 32;
    const AGGREGATES: usize = 8;
    let commands = 200 * crate::soak_factor();
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(5), SnapshotMode::Background);
    let ids: Vec<AggregateId> = (0..AGGREGATES).map(|_| new_id()).collect();
    for id in &ids {
        let mut root = repo.create_new(id);
        commit(&repo, &mut root, history("ada", 0)).await;
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (snapshots, ids, done) = (Arc::clone(&rig.snapshots), ids.clone(), Arc::clone(&done));
        async move {
            let mut highest = vec![0_u64; ids.len()];
            let mut samples = 0_u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for (i, id) in ids.iter().enumerate() {
                    let Ok(found) = snapshots.get_snapshot(id, "Account").await else {
                        continue;
                    };
                    let version = found.map_or(0, |s| s.version);
                    assert!(
                        version >= highest[i],
                        "a snapshot moved back from {} to {version}",
                        highest[i]
                    );
                    highest[i] = version;
                    samples += 1;
                }
                tokio::task::yield_now().await;
            }
            samples
        }
    });
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (repo, ids) = (repo.clone(), ids.clone());
            tokio::spawn(async move {
                let mut conflicts = 0_u64;
                for command in 0..commands {
                    let id = &ids[(task + command) % AGGREGATES];
                    loop {
                        let mut root = repo.load(id).await.expect("load");
                        root.record(deposit(1));
                        match repo.save(&mut root).await {
                            Ok(_) => break,
                            Err(RepositoryError::Concurrency { .. }) => conflicts += 1,
                            Err(other) => panic!("save failed: {other:?}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.expect("a command task");
    }
    repo.await_pending_snapshots().await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads = sampler.await.expect("the sampler");
    assert!(reads > 0, "the snapshot versions were sampled");
    let per_aggregate = (TASKS * commands / AGGREGATES) as u64;
    for id in &ids {
        let loaded = repo.load(id).await.expect("load");
        assert_eq!(
            loaded.version(),
            1 + per_aggregate,
            "every command landed once"
        );
        assert_eq!(
            loaded.state().account().balance,
            i64::try_from(per_aggregate).unwrap()
        );
        assert_same_as_replay(&rig, &loaded).await;
    }
    assert_eq!(repo.stats().conflicts, conflicts);
}

// --- D. Schema versioning and migration --------------------------------------------------

/// D25: a schema 1 snapshot read by schema 2 and 3 code is migrated step by step, used, and
/// only the later events are replayed; the migrated snapshot is stored for next time.
pub async fn migrated_snapshot_is_used<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let id = &account_with_snapshot::<H, AccountV1>(&rig, 14, 10).await;

    let v2 = rig
        .builder::<AccountV2>()
        .migrations(MigrationChain::new(vec![to_v2()], 2).unwrap())
        .build()
        .unwrap();
    let loaded = v2.load(id).await.expect("load");
    assert_eq!(rig.events.loads().last(), Some(&(10, None)));
    assert_same_as_replay(&rig, &loaded).await;
    let stats = v2.stats();
    assert_eq!((stats.snapshot_hits, stats.snapshots_migrated), (1, 1));
    assert_eq!(stats.events_replayed, 5, "events 11..=15 only");
    v2.await_pending_snapshots().await;
    let stored = rig
        .snapshots
        .get_snapshot(id, "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.version, stored.schema_version),
        (10, 2),
        "re-saved after migration"
    );

    let unmigrated = rig.builder::<AccountV2>().build().unwrap();
    let id = &account_with_snapshot::<H, AccountV1>(&rig, 14, 10).await;
    let loaded = unmigrated.load(id).await.expect("load");
    assert_same_as_replay(&rig, &loaded).await;
    let stats = unmigrated.stats();
    assert_eq!(
        (stats.full_replays, stats.fallbacks.schema_mismatch),
        (1, 1)
    );
    assert_eq!(
        stats.events_replayed, 15,
        "without a migration: a full replay"
    );

    let id = &account_with_snapshot::<H, AccountV1>(&rig, 14, 10).await;
    let v3 = rig
        .builder::<AccountV3>()
        .migrations(MigrationChain::new(vec![to_v3(), to_v2()], 3).unwrap())
        .build()
        .unwrap();
    let loaded = v3.load(id).await.expect("load");
    assert_same_as_replay(&rig, &loaded).await;
    assert_eq!(loaded.state().currency, "EUR");
    assert_eq!(v3.stats().snapshots_migrated, 1);
}

/// A migrated snapshot is stored again only when the load used it: one that turns out to be
/// ahead of the stream is neither counted as migrated nor re-saved.
pub async fn unused_migrated_snapshot_is_not_stored<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let id = &new_id();
    let v1 = rig.repo::<AccountV1>(Never, SnapshotMode::Sync);
    let mut root = v1.create_new(id);
    commit(&v1, &mut root, history("ada", 2)).await;
    store_ahead(&rig, id, "ada").await;
    let v2 = rig
        .builder::<AccountV2>()
        .migrations(MigrationChain::new(vec![to_v2()], 2).unwrap())
        .build()
        .unwrap();
    let loaded = v2.load(id).await.expect("load");
    assert_same_as_replay(&rig, &loaded).await;
    v2.await_pending_snapshots().await;
    let stats = v2.stats();
    assert_eq!(
        (stats.fallbacks.snapshot_ahead, stats.snapshots_migrated),
        (1, 0)
    );
    let stored = rig
        .snapshots
        .get_snapshot(id, "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.schema_version, 1,
        "the unused snapshot was not re-saved"
    );
}

/// D26: a snapshot of the current schema is used as is; no migration runs.
pub async fn current_schema_needs_no_migration<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let id = &account_with_snapshot::<H, M>(&rig, 14, 10).await;
    let repo = rig
        .builder::<M>()
        .migrations(MigrationChain::empty(1).unwrap())
        .build()
        .unwrap();
    let loaded = repo.load(id).await.expect("load");
    assert_same_as_replay(&rig, &loaded).await;
    let stats = repo.stats();
    assert_eq!((stats.snapshot_hits, stats.snapshots_migrated), (1, 0));
}

/// D27, D30: no complete path: full replay; the next snapshot carries the current schema.
pub async fn incomplete_path_replays_then_snapshots_at_current_schema<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let id = &account_with_snapshot::<H, AccountV1>(&rig, 8, 5).await;
    let v3 = rig
        .builder::<AccountV3>()
        .migrations(MigrationChain::new(vec![to_v3()], 3).unwrap())
        .strategy(Threshold(10))
        .build()
        .unwrap();
    let mut root = v3.load(id).await.expect("load");
    assert_same_as_replay(&rig, &root).await;
    assert_eq!(v3.stats().fallbacks.schema_mismatch, 1);
    commit(&v3, &mut root, [deposit(100)]).await;
    let stored = rig
        .snapshots
        .get_snapshot(id, "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.version, stored.schema_version), (10, 3));
    let again = v3.load(id).await.expect("load");
    assert_eq!(v3.stats().snapshot_hits, 1);
    assert_same_as_replay(&rig, &again).await;
}

/// D28: a snapshot of a newer schema than the code is never downgraded: replay.
pub async fn newer_snapshot_schema_is_never_downgraded<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let id = &new_id();
    let v3 = rig.repo::<AccountV3>(Threshold(5), SnapshotMode::Sync);
    let mut root = v3.create_new(id);
    commit(&v3, &mut root, history("ada", 6)).await;
    assert_eq!(rig.snapshots.written_versions(), vec![7]);
    let v2 = rig
        .builder::<AccountV2>()
        .migrations(MigrationChain::new(vec![to_v2()], 2).unwrap())
        .build()
        .unwrap();
    let loaded = v2.load(id).await.expect("load");
    assert_same_as_replay(&rig, &loaded).await;
    assert_eq!(v2.stats().fallbacks.schema_mismatch, 1);
}

/// D29: a migration step that fails is a restore failure: replay.
pub async fn failing_migration_replays<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let id = &account_with_snapshot::<H, AccountV1>(&rig, 6, 4).await;
    let v2 = rig
        .builder::<AccountV2>()
        .migrations(MigrationChain::new(vec![failing_to_v2()], 2).unwrap())
        .build()
        .unwrap();
    let loaded = v2.load(id).await.expect("load");
    assert_same_as_replay(&rig, &loaded).await;
    assert_eq!(v2.stats().fallbacks.restore_failure, 1);
}

/// A snapshot whose state no longer fits the aggregate (a field changed type without a
/// schema bump) is a restore failure: replay with the right state, counted.
pub async fn undeserialisable_state_replays<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let id = &new_id();
    let repo = rig.repo::<M>(Threshold(100), SnapshotMode::Sync);
    let mut root = repo.create_new(id);
    commit(&repo, &mut root, history("ada", 4)).await;
    let wrong = serde_json::json!({"owner": 42, "balance": "lots"});
    rig.snapshots
        .save_snapshot(&Snapshot::new(id, "Account", 3, wrong, 1))
        .await
        .unwrap();
    let loaded = repo.load(id).await.expect("load");
    assert_same_as_replay(&rig, &loaded).await;
    assert_eq!(repo.stats().fallbacks.restore_failure, 1);
}

/// `verify_snapshot` finds a snapshot that disagrees with the events (an `apply` changed
/// without a schema bump), confirms one that agrees, and reports unusable ones.
pub async fn verify_snapshot_detects_drift<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let drifted = rig.repo::<DriftedAccount>(Threshold(5), SnapshotMode::Sync);
    let id = &new_id();
    assert_eq!(
        drifted.verify_snapshot(id).await.unwrap(),
        SnapshotCheck::NoSnapshot
    );
    let mut root = drifted.create_new(id);
    commit(&drifted, &mut root, history("ada", 4)).await;
    commit(&drifted, &mut root, [deposit(10)]).await;
    let v1 = rig.repo::<AccountV1>(Threshold(5), SnapshotMode::Sync);
    match v1.verify_snapshot(id).await.unwrap() {
        SnapshotCheck::Mismatch {
            version,
            snapshot,
            replayed,
        } => {
            assert_eq!(version, 5);
            assert_eq!(
                (snapshot["balance"].clone(), replayed["balance"].clone()),
                (20.into(), 10.into())
            );
        }
        other => panic!("drift not found: {other:?}"),
    }
    // A load trusts the snapshot; the fix is a snapshot of the replayed state.
    let fixed = rig.replay::<AccountV1>().load_at(id, 5).await.unwrap();
    v1.create_snapshot(&fixed).await.unwrap();
    assert_eq!(
        v1.verify_snapshot(id).await.unwrap(),
        SnapshotCheck::Matches { version: 5 }
    );
    rig.snapshots.corrupt_gets(true);
    assert_eq!(
        v1.verify_snapshot(id).await.unwrap(),
        SnapshotCheck::Unusable {
            reason: FallbackReason::CorruptSnapshot
        }
    );
}

/// After a schema bump, `rebuild_snapshots` writes a current-schema snapshot of every
/// aggregate of the type from a full replay, page by page; loads then use them.
pub async fn rebuild_snapshots_after_a_schema_bump<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(account_with_snapshot::<H, AccountV1>(&rig, 6, 4).await);
    }
    let closed = &new_id();
    let v1 = rig.repo::<AccountV1>(Never, SnapshotMode::Manual);
    let mut root = v1.create_new(closed);
    commit(
        &v1,
        &mut root,
        [
            AccountEvent::Opened { owner: "x".into() },
            AccountEvent::Closed,
        ],
    )
    .await;
    let v2 = rig.repo::<AccountV2>(Never, SnapshotMode::Manual);
    let mut pages = Vec::new();
    let report = v2
        .rebuild_snapshots(2, |so_far| pages.push(*so_far))
        .await
        .expect("rebuild");
    assert_eq!(
        (report.aggregates, report.written, report.skipped),
        (6, 5, 1)
    );
    assert_eq!(pages.len(), 3, "progress after each page of 2: {pages:?}");
    assert_eq!(pages.last(), Some(&report));
    for id in &ids {
        let stored = rig
            .snapshots
            .get_snapshot(id, "Account")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((stored.version, stored.schema_version), (7, 2));
        let loaded = v2.load(id).await.unwrap();
        assert_same_as_replay(&rig, &loaded).await;
    }
    assert_eq!(v2.stats().snapshot_hits, 5);
    let storeless =
        AggregateRepository::<AccountV2>::builder(StorePair::events_only(Arc::clone(&rig.events)))
            .build()
            .unwrap();
    assert!(matches!(
        storeless.rebuild_snapshots(10, |_| {}).await,
        Err(RepositoryError::NoSnapshotStore)
    ));
}

// --- E. Load and save ---------------------------------------------------------------------

/// E31: S(5) + event 6: the load gives v6 and reads the event store from version 6 only.
pub async fn load_reads_only_events_after_the_snapshot<H: RepositoryHarness, M: AccountModel>(
    h: &H,
) {
    let rig = Rig::open(h, 1).await;
    let id = &account_with_snapshot::<H, M>(&rig, 5, 5).await;
    let repo = rig.repo::<M>(Threshold(100), SnapshotMode::Sync);
    let before = rig.events.loads().len();
    let loaded = repo.load(id).await.expect("load");
    assert_eq!(loaded.version(), 6);
    assert_eq!(rig.events.loads()[before..], [(5, None)]);
    assert_same_as_replay(&rig, &loaded).await;
    assert_eq!(repo.stats().events_replayed, 1);
}

/// E33 and section 5: with `Threshold(n)`, snapshots land at n, 2n, ...
pub async fn threshold_snapshots_at_multiples<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(3), SnapshotMode::Sync);
    let mut root = repo.create_new(new_id());
    commit_each(&repo, &mut root, history("ada", 2)).await;
    assert_eq!(rig.snapshots.written_versions(), vec![3]);

    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(10), SnapshotMode::Sync);
    let mut root = repo.create_new(new_id());
    commit(&repo, &mut root, history("ada", 0)).await;
    assert!(rig.snapshots.written().is_empty());

    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(100), SnapshotMode::Sync);
    let mut root = repo.create_new(new_id());
    commit_each(&repo, &mut root, history("ada", 249)).await;
    assert_eq!(rig.snapshots.written_versions(), vec![100, 200]);
    assert_eq!(repo.stats().snapshots_written, 2);

    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Never, SnapshotMode::Sync);
    let mut root = repo.create_new(new_id());
    commit_each(&repo, &mut root, history("ada", 20)).await;
    commit(&repo, &mut root, history("ada", 200).into_iter().skip(1)).await;
    assert!(rig.snapshots.written().is_empty(), "Never never snapshots");
}

/// E34: one save of 10 events with `Threshold(5)`: one snapshot, at 10.
pub async fn one_big_save_snapshots_once<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(5), SnapshotMode::Sync);
    let mut root = repo.create_new(new_id());
    commit(&repo, &mut root, history("ada", 9)).await;
    assert_eq!(rig.snapshots.written_versions(), vec![10]);
}

/// E35: three events per save with `Threshold(5)`: snapshots at 6 and 12, where the saves
/// cross the multiples.
pub async fn crossing_a_boundary_snapshots_at_the_new_version<
    H: RepositoryHarness,
    M: AccountModel,
>(
    h: &H,
) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(5), SnapshotMode::Sync);
    let mut root = repo.create_new(new_id());
    let events = history("ada", 11);
    for chunk in events.chunks(3) {
        commit(&repo, &mut root, chunk.to_vec()).await;
    }
    assert_eq!(root.version(), 12);
    assert_eq!(rig.snapshots.written_versions(), vec![6, 12]);
}

/// E36: a save with no new events appends nothing and writes no snapshot.
pub async fn empty_save_writes_nothing<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(1), SnapshotMode::Sync);
    let id = &new_id();
    let mut root = repo.create_new(id);
    assert_eq!(repo.save(&mut root).await.expect("save"), 0);
    commit(&repo, &mut root, history("ada", 1)).await;
    let written = rig.snapshots.written().len();
    assert_eq!(repo.save(&mut root).await.expect("save"), 2);
    assert_eq!(rig.snapshots.written().len(), written);
    assert_eq!(repo.stats().saves, 1);
}

/// E37: manual mode never snapshots by itself; `create_snapshot` writes, overwrites, and
/// reports errors.
pub async fn manual_mode_and_create_snapshot<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(1), SnapshotMode::Manual);
    let id = &new_id();
    let mut root = repo.create_new(id);
    commit_each(&repo, &mut root, history("ada", 4)).await;
    assert!(rig.snapshots.written().is_empty());
    let snapshot = repo.create_snapshot(&root).await.expect("create_snapshot");
    assert_eq!((snapshot.version, snapshot.schema_version), (5, 1));
    commit(&repo, &mut root, [deposit(7)]).await;
    repo.create_snapshot(&root).await.expect("create_snapshot");
    assert_eq!(rig.snapshots.written_versions(), vec![5, 6]);
    assert_eq!(
        rig.snapshots
            .get_snapshot(id, "Account")
            .await
            .unwrap()
            .map(|s| s.version),
        Some(6)
    );
    root.record(deposit(1));
    assert!(matches!(
        repo.create_snapshot(&root).await,
        Err(RepositoryError::Capture(
            snap_core::CaptureError::Uncommitted { count: 1 }
        ))
    ));
    rig.snapshots.fail_saves(true);
    let committed = repo.load(id).await.expect("load");
    assert!(matches!(
        repo.create_snapshot(&committed).await,
        Err(RepositoryError::Snapshot(_))
    ));
    let storeless =
        AggregateRepository::<M>::builder(StorePair::events_only(Arc::clone(&rig.events)))
            .build()
            .unwrap();
    assert!(!storeless.has_snapshot_support());
    assert!(matches!(
        storeless.create_snapshot(&committed).await,
        Err(RepositoryError::NoSnapshotStore)
    ));
    assert_eq!(repo.snapshot_mode(), SnapshotMode::Manual);
    assert!(repo.has_snapshot_support());
}

/// E38: a version conflict writes no events and no snapshot, and keeps the root's events.
pub async fn conflict_writes_nothing<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(1), SnapshotMode::Sync);
    let id = &new_id();
    let mut root = repo.create_new(id);
    commit(&repo, &mut root, history("ada", 1)).await;
    let mut first = repo.load(id).await.expect("load");
    let mut second = repo.load(id).await.expect("load");
    commit(&repo, &mut first, [deposit(5)]).await;
    let written = rig.snapshots.written().len();
    second.record(deposit(6));
    second.record(deposit(7));
    let conflict = repo.save(&mut second).await;
    assert!(
        matches!(
            conflict,
            Err(RepositoryError::Concurrency {
                expected: 2,
                actual: 3,
                ..
            })
        ),
        "{conflict:?}"
    );
    assert!(conflict.unwrap_err().is_retryable());
    assert_eq!(second.uncommitted().len(), 2);
    assert_eq!(rig.snapshots.written().len(), written);
    assert_eq!(rig.events.current_version(id, "Account").await.unwrap(), 3);
    assert_eq!(repo.stats().conflicts, 1);
}

/// `load_at(v)` gives the state at v: from the nearest retained snapshot at or below v, or
/// by replay; a version past the head gives the current state.
pub async fn load_at_gives_historical_state<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 3).await;
    let repo = rig.repo::<M>(Threshold(4), SnapshotMode::Sync);
    let id = &new_id();
    let mut root = repo.create_new(id);
    commit_each(&repo, &mut root, history("ada", 19)).await;
    let replay = rig.replay::<M>();
    for version in [1, 3, 4, 5, 9, 12, 13, 19, 20, 25] {
        let at = repo.load_at(id, version).await.expect("load_at");
        let expected = replay.load_at(id, version).await.expect("replay load_at");
        assert_eq!(at.version(), version.min(20));
        assert_eq!(at.state(), expected.state(), "state at {version}");
    }
    // Retained: 12, 16, 20. Versions 12 and up start from one of them; below, a replay.
    let stats = repo.stats();
    assert_eq!(
        (stats.snapshot_hits, stats.full_replays),
        (5, 5),
        "{stats:?}"
    );
    assert!(matches!(
        repo.load_at(id, 0).await,
        Err(RepositoryError::AggregateNotFound { .. })
    ));
}

/// A discarded aggregate loads as not found, though its history stays readable.
pub async fn discarded_aggregate_is_not_found<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(2), SnapshotMode::Sync);
    let id = &new_id();
    let mut root = repo.create_new(id);
    commit(&repo, &mut root, history("ada", 2)).await;
    commit(&repo, &mut root, [AccountEvent::Closed]).await;
    assert!(matches!(
        repo.load(id).await,
        Err(RepositoryError::AggregateNotFound { .. })
    ));
    assert_eq!(
        repo.load_at(id, 3)
            .await
            .expect("load_at")
            .state()
            .account()
            .balance,
        3
    );
}

// --- F. Background mode ------------------------------------------------------------------

/// F39: a background save returns while the snapshot write is still blocked.
pub async fn background_save_does_not_wait_for_the_write<H: RepositoryHarness, M: AccountModel>(
    h: &H,
) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(2), SnapshotMode::Background);
    rig.snapshots.close_gate();
    let id = &new_id();
    let mut root = repo.create_new(id);
    commit(&repo, &mut root, history("ada", 1)).await;
    assert_eq!(
        repo.pending_snapshot_count(),
        1,
        "the write is queued, not done"
    );
    assert!(rig.snapshots.written().is_empty());
    assert_eq!(open_gate_and_wait(&rig, &repo).await, 1);
    assert_eq!(rig.snapshots.written_versions(), vec![2]);
}

/// F40: `await_pending_snapshots` waits for every aggregate's write and counts them.
pub async fn await_pending_waits_for_every_aggregate<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(1), SnapshotMode::Background);
    rig.snapshots.close_gate();
    for _ in 0..3 {
        let mut root = repo.create_new(new_id());
        commit(&repo, &mut root, history("ada", 0)).await;
    }
    assert_eq!(repo.pending_snapshot_count(), 3);
    assert_eq!(open_gate_and_wait(&rig, &repo).await, 3);
    assert_eq!(repo.pending_snapshot_count(), 0);
    assert_eq!(repo.stats().snapshots_written, 3);
    assert_eq!(repo.await_pending_snapshots().await, 0);
}

/// F41: a background failure is counted, never returned; later saves still snapshot.
pub async fn background_failures_are_counted_not_returned<H: RepositoryHarness, M: AccountModel>(
    h: &H,
) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(2), SnapshotMode::Background);
    rig.snapshots.fail_saves(true);
    let id = &new_id();
    let mut root = repo.create_new(id);
    commit(&repo, &mut root, history("ada", 1)).await;
    // The write may already be done (and counted) when the wait starts.
    assert!(repo.await_pending_snapshots().await <= 1);
    assert_eq!(repo.stats().snapshot_failures, 1);
    rig.snapshots.fail_saves(false);
    commit(&repo, &mut root, [deposit(2), deposit(3)]).await;
    repo.await_pending_snapshots().await;
    assert_eq!(rig.snapshots.written_versions(), vec![4]);
    assert_eq!(repo.stats().snapshots_written, 1);
}

/// F42: the state is captured when the snapshot is scheduled; later changes do not leak in.
pub async fn background_captures_state_when_scheduled<H: RepositoryHarness, M: AccountModel>(
    h: &H,
) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(2), SnapshotMode::Background);
    rig.snapshots.close_gate();
    let id = &new_id();
    let mut root = repo.create_new(id);
    commit(&repo, &mut root, history("ada", 1)).await;
    root.record(deposit(1_000));
    rig.snapshots.open_gate();
    repo.await_pending_snapshots().await;
    let stored = rig
        .snapshots
        .get_snapshot(id, "Account")
        .await
        .unwrap()
        .unwrap();
    let state: M = serde_json::from_value(stored.state).unwrap();
    assert_eq!((stored.version, state.account().balance), (2, 1));
}

/// F43: 1,000 rapid saves of one aggregate coalesce into few writes; the last one wins.
pub async fn background_coalesces_rapid_saves<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(1), SnapshotMode::Background);
    let id = &new_id();
    let mut root = repo.create_new(id);
    rig.snapshots.close_gate();
    commit_each(&repo, &mut root, history("ada", 999)).await;
    rig.snapshots.open_gate();
    repo.await_pending_snapshots().await;
    let written = rig.snapshots.written_versions();
    assert!(
        written.len() <= 3,
        "1,000 saves cost {} writes",
        written.len()
    );
    assert_eq!(written.last(), Some(&1_000));
    assert_eq!(
        rig.snapshots
            .get_snapshot(id, "Account")
            .await
            .unwrap()
            .map(|s| s.version),
        Some(1_000)
    );
    let stats = repo.stats();
    assert!(stats.snapshots_coalesced >= 990, "{stats:?}");
}

/// F44: shutting down waits for pending writes and refuses new ones; dropping the
/// repository with writes pending lets them finish; no partial rows, no panic.
pub async fn shutdown_and_drop_with_pending_writes<H: RepositoryHarness, M: AccountModel>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<M>(Threshold(1), SnapshotMode::Background);
    rig.snapshots.close_gate();
    let id = &new_id();
    let mut root = repo.create_new(id);
    commit(&repo, &mut root, history("ada", 0)).await;
    let mut shutdown = std::pin::pin!(repo.shutdown());
    let first_poll =
        std::future::poll_fn(|cx| std::task::Poll::Ready(shutdown.as_mut().poll(cx).is_pending()))
            .await;
    assert!(first_poll, "shutdown waits for the blocked write");
    rig.snapshots.open_gate();
    assert_eq!(shutdown.await, 1);
    commit(&repo, &mut root, [deposit(1)]).await;
    assert_eq!(repo.pending_snapshot_count(), 0, "no writes after shutdown");
    assert_eq!(repo.stats().snapshots_dropped, 1);

    let other = rig.repo::<M>(Threshold(1), SnapshotMode::Background);
    rig.snapshots.close_gate();
    let id = &new_id();
    let mut root = other.create_new(id);
    commit(&other, &mut root, history("ada", 2)).await;
    drop(other);
    rig.snapshots.open_gate();
    for _ in 0..500 {
        if let Some(snapshot) = rig.snapshots.get_snapshot(id, "Account").await.unwrap() {
            assert_eq!(snapshot.version, 3);
            let state: M = serde_json::from_value(snapshot.state).unwrap();
            assert_eq!(state.account().balance, 3, "a whole snapshot");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the write queued before the drop never happened");
}
