//! Cases about the load and the commit of a [`Backend`]: what a load sees
//! while others write, and what a commit keeps when its snapshot cannot be stored.

use std::ops::ControlFlow;

use serde_json::json;
use snap_core::{
    AggregateId, Backend, EventStore, LoadRequest, LoadSink, NewEvent, RecordedEvent, SnapshotRead,
    SnapshotStore, StoredEvent,
};
use snap_strategy::{SnapshotMode, Threshold};

use crate::fixtures::new_id;

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
    let id = &new_id();
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
    let id = &new_id();
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

/// Collects what a load hands over, as recorded events.
struct Collect {
    id: AggregateId,
    events: Vec<RecordedEvent>,
}

impl LoadSink for Collect {
    fn snapshot(&mut self, _: SnapshotRead) -> bool {
        false
    }

    fn event(&mut self, event: &StoredEvent<'_>) -> ControlFlow<()> {
        let payload = event.payload.to_value().expect("the payload is JSON");
        let metadata = event.metadata.to_value().expect("the metadata is JSON");
        let new = NewEvent::new(event.event_type, payload)
            .with_metadata(metadata)
            .with_event_id(event.event_id);
        self.events.push(RecordedEvent::new(
            self.id.clone(),
            "Account",
            event.version,
            new,
            event.recorded_at,
        ));
        ControlFlow::Continue(())
    }
}

/// A backend's load hands every event as its event store keeps it (id, type, payload,
/// metadata, time), past the first page and up to a bound; a payload-only load hands the same
/// versions and payloads.
pub async fn a_load_hands_the_events_as_stored<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let backend = rig.stores();
    let id = &new_id();
    let appended = (1..=300)
        .map(|n| {
            NewEvent::new("Deposited", json!({"Deposited": {"amount": n}}))
                .with_metadata(json!({"n": n, "who": "ada"}))
        })
        .collect();
    rig.events
        .append(id, "Account", 0, appended)
        .await
        .expect("append");
    let stored = rig.events.load(id, "Account", 0, None).await.expect("load");
    for (up_to, payload_only) in [(None, false), (Some(120), false), (None, true)] {
        let mut sink = Collect {
            id: id.clone(),
            events: Vec::new(),
        };
        let request = LoadRequest::new("Account", id)
            .up_to(up_to)
            .through_snapshot(false)
            .payload_only(payload_only);
        let loaded = backend.load(&request, &mut sink).await.expect("load");
        let expected = &stored[..usize::try_from(up_to.unwrap_or(300)).unwrap_or(300)];
        assert_eq!(loaded.version, expected.len() as u64, "{request:?}");
        if payload_only {
            let got: Vec<_> = sink
                .events
                .iter()
                .map(|e| (e.version, &e.payload))
                .collect();
            let want: Vec<_> = expected.iter().map(|e| (e.version, &e.payload)).collect();
            assert_eq!(got, want, "{request:?}");
        } else {
            assert_eq!(sink.events, expected, "{request:?}");
        }
    }
}

/// A stream of large saves (40 of about 300 KB, 12 MB in all: more than one read's batch of
/// bytes on a backend that reads in batches) loads back whole and in order, through the event
/// store, through the backend, and through a snapshot in its middle.
pub async fn a_stream_of_large_saves_loads_whole<H: RepositoryHarness>(h: &H) {
    let rig = Rig::open(h, 1).await;
    let backend = rig.stores();
    let id = &new_id();
    let padding = "x".repeat(2_000);
    let (saves, per_save) = (40_u64, 150_u64);
    for save in 0..saves {
        let batch = (1..=per_save)
            .map(|n| {
                let amount = save * per_save + n;
                NewEvent::new(
                    "Deposited",
                    json!({"Deposited": {"amount": amount}, "pad": padding}),
                )
            })
            .collect();
        rig.events
            .append(id, "Account", save * per_save, batch)
            .await
            .expect("a large save");
    }
    let total = saves * per_save;
    let stored = rig.events.load(id, "Account", 0, None).await.expect("load");
    assert_eq!(
        stored.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>(),
        "the event store loads every event once, in order"
    );
    let middle = 17 * per_save + 3;
    rig.snapshots
        .save_snapshot(&snap_core::Snapshot::new(
            id,
            "Account",
            middle,
            json!({"mark": "middle"}),
            1,
        ))
        .await
        .expect("a snapshot in the middle");
    for through_snapshot in [false, true] {
        let mut sink = Versions {
            taken: None,
            versions: Vec::new(),
        };
        let request = LoadRequest::new("Account", id).through_snapshot(through_snapshot);
        let loaded = backend.load(&request, &mut sink).await.expect("load");
        let first = sink.taken.unwrap_or(0) + 1;
        assert_eq!(loaded.version, total, "{request:?}");
        assert_eq!(
            sink.versions,
            (first..=total).collect::<Vec<_>>(),
            "{request:?}: every event after the start, once, in order"
        );
        assert_eq!(sink.taken.is_some(), through_snapshot, "{request:?}");
    }
}

/// Takes any snapshot found and keeps the versions of the events.
struct Versions {
    taken: Option<u64>,
    versions: Vec<u64>,
}

impl LoadSink for Versions {
    fn snapshot(&mut self, read: SnapshotRead) -> bool {
        if let SnapshotRead::Found(snapshot) = read {
            self.taken = Some(snapshot.version);
            return true;
        }
        false
    }

    fn event(&mut self, event: &StoredEvent<'_>) -> ControlFlow<()> {
        self.versions.push(event.version);
        ControlFlow::Continue(())
    }
}
