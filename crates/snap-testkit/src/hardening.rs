//! Edge cases where the promise once bent: events whose serde round trip is not exact, and
//! streams longer than one page of a store's read.

use serde::{Deserialize, Serialize};
use snap_core::{Aggregate, EncodeError, EventStore, SnapshotStore};
use snap_repo::RepositoryError;
use snap_strategy::{Never, SnapshotMode, Threshold};

use crate::fixtures::new_id;

use crate::RepositoryHarness;
use crate::repository::Rig;

/// A tally whose events do not survive their serde round trip unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// The sum of what was added.
    pub total: i64,
    /// The last measurement.
    pub measured: f64,
}

/// What happens to a [`Tally`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TallyEvent {
    /// Adds `n`, plus a `bonus` that is never stored: a replay adds 0 for it.
    Added {
        /// Stored.
        n: i64,
        /// Not stored (`#[serde(skip)]`).
        #[serde(skip)]
        bonus: i64,
    },
    /// A measurement; a non-finite one serialises as `null`, which does not read back.
    Measured {
        /// The value.
        value: f64,
    },
}

impl Aggregate for Tally {
    const TYPE: &'static str = "Tally";
    type Event = TallyEvent;

    fn apply(&mut self, event: &TallyEvent) {
        match event {
            TallyEvent::Added { n, bonus } => self.total += n + bonus,
            TallyEvent::Measured { value } => self.measured = *value,
        }
    }
}

fn added(n: i64, bonus: i64) -> TallyEvent {
    TallyEvent::Added { n, bonus }
}

/// `create_snapshot` of a state older than the stored snapshot is refused with
/// [`RepositoryError::SnapshotSuperseded`]: stores never move back, so nothing would be
/// written, and nothing is counted as written. The same version again (a schema bump
/// re-snapshots at one version) is a write.
pub async fn a_snapshot_older_than_the_stored_one_is_refused<H: RepositoryHarness>(h: &H) {
    for keep in [1, 3] {
        let rig = Rig::open(h, keep).await;
        let repo = rig.repo::<Tally>(Never, SnapshotMode::Manual);
        let id = &new_id();
        let mut root = repo.create_new(id);
        for n in 1..=6 {
            root.record(added(n, 0));
        }
        repo.save(&mut root).await.unwrap();
        repo.create_snapshot(&root).await.unwrap();
        let older = repo.load_at(id, 4).await.unwrap();
        match repo.create_snapshot(&older).await {
            Err(RepositoryError::SnapshotSuperseded {
                aggregate_id,
                version: 4,
                stored: 6,
                ..
            }) => assert_eq!(&aggregate_id, id),
            other => panic!("keep_history({keep}): an older snapshot was taken: {other:?}"),
        }
        assert_eq!(repo.stats().snapshots_written, 1, "keep_history({keep})");
        let latest = rig.snapshots.get_snapshot(id, "Tally").await.unwrap();
        assert_eq!(latest.map(|s| s.version), Some(6), "keep_history({keep})");
        let below = rig.snapshots.get_snapshot_at(id, "Tally", 5).await.unwrap();
        assert_eq!(
            below, None,
            "keep_history({keep}): nothing was written at 4"
        );
        repo.create_snapshot(&root).await.unwrap();
        assert_eq!(repo.stats().snapshots_written, 2, "keep_history({keep})");
    }
}

/// An event that loses a field on its way to the store: the state the writer holds after the
/// save, the snapshot it writes (sync, background or manual) and a load through it all equal
/// a full replay of the stored events.
pub async fn a_snapshot_of_lossy_events_equals_a_full_replay<H: RepositoryHarness>(h: &H) {
    for mode in [
        SnapshotMode::Sync,
        SnapshotMode::Background,
        SnapshotMode::Manual,
    ] {
        let rig = Rig::open(h, 1).await;
        let repo = rig.repo::<Tally>(Threshold(1), mode);
        let id = &new_id();
        let mut root = repo.create_new(id);
        root.record(added(1, 100));
        root.record(added(2, 1_000));
        assert_eq!(
            root.state().total,
            3,
            "{mode:?}: the state applies what is stored"
        );
        repo.save(&mut root).await.unwrap();
        if mode == SnapshotMode::Manual {
            repo.create_snapshot(&root).await.unwrap();
        }
        repo.await_pending_snapshots().await;
        let stored = rig.snapshots.get_snapshot(id, "Tally").await.unwrap();
        assert_eq!(
            stored.map(|s| (s.version, s.state["total"].as_i64())),
            Some((2, Some(3))),
            "{mode:?}: the snapshot holds the replayed state"
        );
        let replayed = rig.replay::<Tally>().load(id).await.unwrap();
        let loaded = repo.load(id).await.unwrap();
        assert_eq!(repo.stats().snapshot_hits, 1, "{mode:?}");
        assert_eq!(loaded.state(), replayed.state(), "{mode:?}");
        assert_eq!(
            root.state(),
            replayed.state(),
            "{mode:?}: the writer's state"
        );
    }
}

/// An event whose JSON does not read back (a NaN becomes `null`) is refused by the save with a
/// typed error before anything is written, and the aggregate stays loadable.
pub async fn an_event_that_cannot_be_read_back_is_refused<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<Tally>(Threshold(1), SnapshotMode::Sync);
    let id = &new_id();
    let mut root = repo.create_new(id);
    root.record(added(5, 0));
    repo.save(&mut root).await.unwrap();
    root.record(added(1, 0));
    root.record(TallyEvent::Measured { value: f64::NAN });
    match repo.save(&mut root).await {
        Err(RepositoryError::Serialization {
            aggregate_id,
            source: EncodeError::NotReplayable { index: 1, .. },
            ..
        }) => assert_eq!(&aggregate_id, id),
        other => panic!("a NaN event was not refused: {other:?}"),
    }
    assert_eq!(rig.events.current_version(id, "Tally").await.unwrap(), 1);
    let loaded = repo.load(id).await.unwrap();
    assert_eq!((loaded.version(), loaded.state().total), (1, 5));
    let mut fresh = loaded;
    fresh.record(TallyEvent::Measured { value: 2.5 });
    assert_eq!(repo.save(&mut fresh).await.unwrap(), 2);
}

/// A background write that fails is not taken for a snapshot: the next save, counting events
/// from the last snapshot that exists, schedules the write again.
pub async fn a_failed_background_write_is_not_counted_as_a_snapshot<H: RepositoryHarness>(h: &H) {
    use crate::accounts::{AccountEvent, AccountV1, history};
    use snap_strategy::Hybrid;

    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<AccountV1>(
        Hybrid {
            min: 0,
            max: 3,
            every: 1_000,
        },
        SnapshotMode::Background,
    );
    let id = &new_id();
    let mut root = repo.create_new(id);
    rig.snapshots.fail_saves(true);
    crate::repository::commit(&repo, &mut root, history("ada", 2)).await;
    repo.await_pending_snapshots().await;
    assert_eq!(repo.stats().snapshot_failures, 1, "{:?}", repo.stats());
    rig.snapshots.fail_saves(false);
    crate::repository::commit(&repo, &mut root, [AccountEvent::Deposited { amount: 1 }]).await;
    repo.await_pending_snapshots().await;
    assert_eq!(
        rig.snapshots.written_versions(),
        vec![4],
        "{:?}",
        repo.stats()
    );
}
