//! What a save costs: one event with and without a snapshot (sync and background), one big
//! save against the driver's bare insert, and the snapshot store's throughput.

use std::sync::Arc;
use std::time::Duration;

use snap_es::{
    AggregateId, AggregateRepository, DynBackend, Never, Snapshot, SnapshotMode, SnapshotStore,
    Threshold,
};
use uuid::Uuid;

use crate::Config;
use crate::aggregate::{BenchAccount, deposit, sample_state};
use crate::commit_floor::BareStream;
use crate::floor::Floor;
use crate::measure::Samples;
use crate::report::{Rate, Report, Row, Section, Target};
use crate::scenario::{err, named_id, uuid_id};

/// What the save rows of one backend are judged by.
pub(crate) struct SaveTargets {
    /// A sync save that writes a snapshot, against the save without.
    pub(crate) sync: Target,
    /// A background save that schedules a snapshot, against the save without.
    pub(crate) background: Target,
    /// One save of [`BIG`] events, against the driver's bare insert.
    pub(crate) big: Target,
}

/// Events in the big save.
const BIG: u64 = 10_000;
/// The row the snapshot saves are compared with.
const WITHOUT: &str = "save 1 event: no snapshots";

/// The latency of a save of one event through the repository on the backend: with no
/// snapshots, and with a snapshot on every save written in sync mode (in the commit) or in
/// background mode. The snapshot saves are judged against the save without.
pub(crate) async fn save_rows(
    backend: &'static str,
    config: &Config,
    report: &mut Report,
    native: &Arc<DynBackend>,
    mut floor: Option<&mut Floor>,
    targets: &SaveTargets,
) -> Result<(), String> {
    // (row, with snapshots, mode, with a string id)
    let modes = [
        (WITHOUT, false, SnapshotMode::Sync, false),
        (
            "save 1 event: snapshot, sync",
            true,
            SnapshotMode::Sync,
            false,
        ),
        (
            "save 1 event: snapshot, background",
            true,
            SnapshotMode::Background,
            false,
        ),
        (
            "save 1 event: snapshot, sync, string id",
            true,
            SnapshotMode::Sync,
            true,
        ),
    ];
    let snapshots = native
        .snapshot_store()
        .ok_or_else(|| format!("{backend}: the backend keeps no snapshots"))?;
    let mut without = None;
    let mut bare_without = None;
    for (n, (name, snapshot, mode, named)) in modes.into_iter().enumerate() {
        let builder = AggregateRepository::<BenchAccount>::builder(Arc::clone(native)).mode(mode);
        let repo = if snapshot {
            builder.strategy(Threshold(1))
        } else {
            builder.strategy(Never)
        }
        .build()
        .map_err(err)?;
        let id = &if named {
            named_id(usize::MAX - n)
        } else {
            uuid_id()
        };
        let mut root = repo.create_new(id);
        // Warm-up: the first saves create the stream and fill caches.
        for n in 1..=5 {
            root.record(deposit(n));
            repo.save(&mut root).await.map_err(err)?;
        }
        let probe = std::time::Instant::now();
        root.record(deposit(6));
        repo.save(&mut root).await.map_err(err)?;
        let mut samples = Samples::default();
        // The bare commits of the same shape, interleaved, so drift hits both alike.
        let mut bare = (mode == SnapshotMode::Sync && !named)
            .then(BareStream::new)
            .transpose()?
            .zip(floor.as_deref_mut())
            .map(|(stream, floor)| (stream, floor, Samples::default()));
        for n in 0..config.samples(probe.elapsed()).min(2_000) {
            root.record(deposit(n as u64));
            samples.time(repo.save(&mut root)).await.map_err(err)?;
            if let Some((stream, floor, bare)) = bare.as_mut() {
                bare.time(stream.commit(floor, snapshot)).await?;
            }
        }
        if let Some((_, _, bare)) = bare {
            let floor_row = Row::new(backend, format!("floor: {}", bare_name(snapshot)), &bare);
            let floor_row = match bare_without {
                None => {
                    bare_without = Some(bare.median());
                    floor_row
                }
                Some(median) => floor_row.against(bare_name(false), median),
            };
            report.add(Section::Saves, floor_row);
        }
        repo.await_pending_snapshots().await;
        let expected = snapshot.then_some(root.version());
        check_stored(&*snapshots, id, expected)
            .await
            .map_err(|e| format!("{backend}: {name}: {e}"))?;
        let row = Row::new(backend, name, &samples);
        let row = match (without, mode) {
            (None, _) => {
                without = Some(samples.median());
                row
            }
            (Some(median), SnapshotMode::Background) => {
                row.against(WITHOUT, median).target(targets.background)
            }
            (Some(median), _) => row.against(WITHOUT, median).target(targets.sync),
        };
        report.add(Section::Saves, row);
        repo.shutdown().await;
    }
    Ok(())
}

/// The snapshots written are the state of the stream's head: the stored snapshot is at
/// `expected` (`None`: there is none).
async fn check_stored(
    snapshots: &snap_es::DynSnapshotStore,
    id: &AggregateId,
    expected: Option<u64>,
) -> Result<(), String> {
    let stored = snapshots
        .get_snapshot(id, "BenchAccount")
        .await
        .map_err(err)?
        .map(|s| s.version);
    if stored == expected {
        Ok(())
    } else {
        Err(format!(
            "the snapshot is at {stored:?}, expected {expected:?}"
        ))
    }
}

/// What the bare commit of a one-event save is called, with or without the snapshot row.
fn bare_name(snapshot: bool) -> &'static str {
    if snapshot {
        "bare commit: 1 event + snapshot row"
    } else {
        "bare commit: 1 event"
    }
}

/// One save of [`BIG`] events through the repository on the backend, and the same rows
/// inserted by the driver alone on the floor's connection, in alternating rounds.
pub(crate) async fn big_save_rows(
    backend: &'static str,
    config: &Config,
    report: &mut Report,
    native: &Arc<DynBackend>,
    mut floor: Option<&mut Floor>,
    target: Target,
) -> Result<(), String> {
    let repo = AggregateRepository::<BenchAccount>::builder(Arc::clone(native))
        .strategy(Never)
        .build()
        .map_err(err)?;
    let rows: Vec<snap_es::NewEvent> = (1..=BIG)
        .map(|n| snap_es::NewEvent::from_event(&deposit(n)).map_err(err))
        .collect::<Result<_, _>>()?;
    let (mut ours, mut bare) = (Samples::default(), Samples::default());
    for _ in 0..if config.quick { 1 } else { 10 } {
        let mut root = repo.create_new(Uuid::new_v4());
        for n in 1..=BIG {
            root.record(deposit(n));
        }
        if let Some(floor) = floor.as_deref_mut() {
            floor.settle()?;
        }
        let version = ours.time(repo.save(&mut root)).await.map_err(err)?;
        assert_eq!(version, BIG, "one save appends them all");
        if let Some(floor) = floor.as_deref_mut() {
            let fresh = rows
                .iter()
                .map(|e| e.clone().with_event_id(Uuid::new_v4()))
                .collect::<Vec<_>>();
            floor.settle()?;
            bare.time(floor.insert(&Uuid::new_v4().into(), &fresh))
                .await?;
        }
    }
    let name = format!("one save of {BIG} events");
    let mut row = Row::new(backend, name, &ours);
    if floor.is_some() {
        let floor_name = "bare batch insert of the same rows";
        report.add(
            Section::Saves,
            Row::new(backend, format!("floor: {floor_name}"), &bare),
        );
        row = row.against(floor_name, bare.median()).target(target);
    }
    report.add(Section::Saves, row);
    Ok(())
}

/// Operations per second of `get_snapshot` and `save_snapshot`, by one task and by four.
pub(crate) async fn throughput<S: SnapshotStore + Clone>(
    backend: &'static str,
    config: &Config,
    report: &mut Report,
    snapshots: &S,
    ids: &[AggregateId],
    floor: Option<f64>,
) -> Result<(), String> {
    let budget = if config.quick {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    for tasks in [1, 4] {
        for operation in ["get_snapshot", "save_snapshot"] {
            let started = std::time::Instant::now();
            let deadline = started + budget;
            let mut handles = Vec::with_capacity(tasks);
            for task in 0..tasks {
                let store = snapshots.clone();
                let ids: Vec<AggregateId> = ids.iter().skip(task).step_by(tasks).cloned().collect();
                let reads = operation == "get_snapshot";
                // Built once: the loop times the store, not building and serialising a state.
                let mut snapshot =
                    Snapshot::new(Uuid::new_v4(), "BenchAccount", 1, sample_state(), 1);
                handles.push(tokio::spawn(async move {
                    let mut ops = 0u64;
                    let mut next = ids.iter().cycle();
                    while std::time::Instant::now() < deadline {
                        if reads {
                            let id = next.next().ok_or("no ids")?;
                            store.get_snapshot(id, "BenchAccount").await.map_err(err)?;
                        } else {
                            snapshot.version = ops + 1;
                            store.save_snapshot(&snapshot).await.map_err(err)?;
                        }
                        ops += 1;
                    }
                    Ok::<u64, String>(ops)
                }));
            }
            let mut ops = 0;
            for handle in handles {
                ops += handle.await.map_err(err)??;
            }
            report.add_rate(Rate {
                backend,
                operation,
                tasks,
                ops,
                elapsed: started.elapsed(),
                floor,
            });
        }
    }
    Ok(())
}
