//! History: the walk of the `eventsourcing` library's snapshotting page, on every backend.
//! Snapshots every 2 events, snapshot reads at or below a version (its `lte=`), the entity at
//! each version, and an entity that is discarded, with the stats that say when a load at a
//! version found no snapshot.

use serde::{Deserialize, Serialize};
use snap_core::{Aggregate, AggregateRoot, SnapshotStore};
use snap_repo::{AggregateRepository, RepositoryError};
use snap_strategy::{SnapshotMode, Threshold};

use crate::fixtures::new_id;

use crate::RepositoryHarness;
use crate::repository::{Rig, commit};

/// The `eventsourcing` library's dog, which learns tricks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dog {
    /// Its name.
    pub name: String,
    /// What it has learnt, in order.
    pub tricks: Vec<String>,
    /// Whether it left the school (discarded).
    pub gone: bool,
}

/// What happens to a [`Dog`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DogEvent {
    /// Registered under a name (version 1).
    Registered {
        /// The name.
        name: String,
    },
    /// Learnt a trick.
    TrickAdded {
        /// The trick.
        trick: String,
    },
    /// Left: the aggregate is discarded.
    Discarded,
}

impl Aggregate for Dog {
    const TYPE: &'static str = "Dog";
    type Event = DogEvent;

    fn apply(&mut self, event: &DogEvent) {
        match event {
            DogEvent::Registered { name } => self.name.clone_from(name),
            DogEvent::TrickAdded { trick } => self.tricks.push(trick.clone()),
            DogEvent::Discarded => self.gone = true,
        }
    }

    fn is_discarded(&self) -> bool {
        self.gone
    }
}

const TRICKS: [&str; 3] = ["roll over", "play dead", "fetch ball"];

/// The dog after `version` events of the walk.
fn dog_at(version: u64) -> Dog {
    Dog {
        name: "Fido".into(),
        tricks: TRICKS[..usize::try_from(version - 1).expect("a small version")]
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
        gone: false,
    }
}

/// A repository snapshotting every 2 events, and Fido registered and taught the three tricks,
/// one save each: versions 1 to 4.
async fn school<H: RepositoryHarness>(
    rig: &Rig<H>,
) -> (AggregateRepository<Dog>, AggregateRoot<Dog>) {
    let repo = rig.repo::<Dog>(Threshold(2), SnapshotMode::Sync);
    let mut dog = repo.create_new(new_id());
    let registered = DogEvent::Registered {
        name: "Fido".into(),
    };
    commit(&repo, &mut dog, [registered]).await;
    for trick in TRICKS {
        let trick = DogEvent::TrickAdded {
            trick: trick.into(),
        };
        commit(&repo, &mut dog, [trick]).await;
    }
    (repo, dog)
}

/// The walk with every snapshot kept: snapshots at 2 and 4, `get_snapshot_at` as `lte=`, the
/// entity at each version (through the nearest snapshot below it, from the start at version
/// 1), version 0 not found, and a discarded dog not found at its head but found before.
pub async fn the_eventsourcing_walk_reads_every_version<H: RepositoryHarness>(h: &H) {
    let rig = Rig::<H>::open(h, 10).await;
    let (repo, mut dog) = school(&rig).await;
    let id = &dog.id().clone();
    assert_eq!(dog.version(), 4);

    // `snapshots.get(id, lte=v)`: the highest snapshot at or below v.
    for (lte, expected) in [
        (1, None),
        (2, Some(2)),
        (3, Some(2)),
        (4, Some(4)),
        (9, Some(4)),
    ] {
        let found = rig.snapshots.get_snapshot_at(id, Dog::TYPE, lte).await;
        assert_eq!(
            found.expect("read").map(|s| s.version),
            expected,
            "lte={lte}"
        );
    }

    // `repository.get(id, version=v)`.
    for version in 1..=4_u64 {
        let at = repo.load_at(id, version).await.expect("load at a version");
        assert_eq!(at.version(), version);
        assert_eq!(at.state(), &dog_at(version), "at {version}");
        assert_eq!(
            at.state(),
            rig.replay::<Dog>()
                .load_at(id, version)
                .await
                .expect("replay")
                .state()
        );
    }
    let stats = repo.stats();
    assert_eq!(stats.historical_loads, 4);
    assert_eq!(
        stats.historical_without_snapshot, 1,
        "only version 1 lies below every snapshot"
    );
    assert!(
        matches!(
            repo.load_at(id, 0).await,
            Err(RepositoryError::AggregateNotFound { .. })
        ),
        "versions count events from 1: version 0 is before the first"
    );

    // Discarded: gone at its head, there before.
    commit(&repo, &mut dog, [DogEvent::Discarded]).await;
    assert!(matches!(
        repo.load(id).await,
        Err(RepositoryError::AggregateNotFound { .. })
    ));
    let before = repo.load_at(id, 4).await.expect("the dog before it left");
    assert_eq!(before.state(), &dog_at(4));
}

/// With only the latest snapshot kept (the default), a load at a version below it replays
/// from the first event, gives the same state, and the stats say so.
pub async fn a_load_below_the_only_snapshot_is_counted<H: RepositoryHarness>(h: &H) {
    let rig = Rig::<H>::open(h, 1).await;
    let (repo, dog) = school(&rig).await;
    let id = &dog.id().clone();
    let at = repo.load_at(id, 3).await.expect("load at 3");
    assert_eq!(at.state(), &dog_at(3));
    let stats = repo.stats();
    assert_eq!(
        (stats.historical_loads, stats.historical_without_snapshot),
        (1, 1)
    );
    assert_eq!(stats.events_replayed, 3, "from the first event");
    repo.load_at(id, 4).await.expect("load at the snapshot");
    let stats = repo.stats();
    assert_eq!(
        (stats.historical_loads, stats.historical_without_snapshot),
        (2, 1)
    );
}
