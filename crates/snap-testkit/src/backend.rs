//! Cases about the load and the commit of a [`Backend`](snap_core::Backend): what a load sees
//! while others write, and what a commit keeps when its snapshot cannot be stored.

use snap_core::{EventStore, SnapshotStore};
use snap_strategy::{SnapshotMode, Threshold};
use uuid::Uuid;

use crate::RepositoryHarness;
use crate::accounts::{AccountEvent, AccountV1, history};
use crate::repository::{Rig, commit};

/// Loads taken while another task keeps appending (and snapshotting) see one consistent view
/// each: every loaded state equals a full replay up to the loaded version, and versions never
/// go back.
pub async fn a_load_during_appends_equals_a_replay_at_its_version<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<AccountV1>(Threshold(7), SnapshotMode::Sync);
    let replay = rig.replay::<AccountV1>();
    let id = Uuid::new_v4();
    let mut root = repo.create_new(id);
    commit(&repo, &mut root, history("ada", 1)).await;
    let saves = 150 * crate::soak_factor();
    let writer = tokio::spawn({
        let repo = repo.clone();
        async move {
            for n in 0..saves {
                let amount = i64::try_from(n).unwrap_or(0);
                root.record(AccountEvent::Deposited { amount });
                repo.save(&mut root).await.expect("save while loads run");
            }
        }
    });
    let mut seen = 0;
    let mut loads = 0;
    while !writer.is_finished() || loads == 0 {
        let loaded = repo.load(id).await.expect("load while appends run");
        let expected = replay
            .load_at(id, loaded.version())
            .await
            .expect("replay at the loaded version");
        assert_eq!(
            (loaded.version(), loaded.state()),
            (expected.version(), expected.state()),
            "a load during appends equals the replay at its version"
        );
        assert!(loaded.version() >= seen, "versions never go back");
        seen = loaded.version();
        loads += 1;
    }
    writer.await.expect("the writer finished");
    let last = repo.load(id).await.expect("final load");
    assert_eq!(last.version(), 2 + saves as u64, "every save is there");
    assert!(
        repo.stats().snapshot_hits > 0,
        "loads went through snapshots"
    );
}

/// A sync save whose snapshot cannot be stored commits its events anyway: the save succeeds,
/// the failure is counted, the stored snapshot stays where it was, and a load equals the
/// replay.
pub async fn a_failing_snapshot_in_the_commit_keeps_the_events<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let repo = rig.repo::<AccountV1>(Threshold(2), SnapshotMode::Sync);
    let id = Uuid::new_v4();
    let mut root = repo.create_new(id);
    commit(&repo, &mut root, history("ada", 1)).await;
    assert_eq!(rig.snapshots.written_versions(), [2]);
    rig.snapshots.fail_saves(true);
    root.record(AccountEvent::Deposited { amount: 5 });
    root.record(AccountEvent::Deposited { amount: 6 });
    let version = repo.save(&mut root).await.expect("the save succeeds");
    rig.snapshots.fail_saves(false);
    assert_eq!(version, 4);
    assert_eq!(rig.events.current_version(id, "Account").await.unwrap(), 4);
    let stored = rig
        .snapshots
        .inner()
        .get_snapshot(id, "Account")
        .await
        .unwrap();
    assert_eq!(stored.map(|s| s.version), Some(2), "the old snapshot stays");
    assert_eq!(repo.stats().snapshot_failures, 1);
    let loaded = repo.load(id).await.unwrap();
    let replayed = rig.replay::<AccountV1>().load(id).await.unwrap();
    assert_eq!(loaded.state(), replayed.state());
    assert_eq!(loaded.version(), 4);
}
