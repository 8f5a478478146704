//! The NATS JetStream backend: the same rows as the other backends through a repository on
//! the database handle, and the floor of a snapshot read, one direct get of the same message, measured
//! in the same run.

use std::sync::Arc;

use snap_es::nats::{NatsDatabase, NatsOptions};
use snap_es::{AggregateId, DynBackend, Snapshot, SnapshotStore};

use crate::Config;
use crate::aggregate::sample_state;
use crate::measure::Samples;
use crate::report::{Report, Row, Section, Target};
use crate::saves::SaveTargets;
use crate::scenario::{Targets, err, stores, uuid_id};

const PREFIX: &str = "snapbench";

async fn connect() -> Result<Option<NatsDatabase>, String> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    match NatsOptions::new(&url).prefix(PREFIX).connect().await {
        // A fresh start: whatever an earlier run left goes.
        Ok(old) => {
            old.destroy().await.map_err(err)?;
            NatsOptions::new(&url)
                .prefix(PREFIX)
                .connect()
                .await
                .map(Some)
                .map_err(err)
        }
        Err(e) if std::env::var("SNAP_REQUIRE_NATS").is_ok_and(|v| v == "1") => {
            Err(format!("NATS at {url} is unreachable: {e}"))
        }
        Err(e) => {
            Report::progress(&format!("SKIPPED nats: {url} is unreachable: {e}"));
            Ok(None)
        }
    }
}

/// One direct get of a snapshot message against `get_snapshot` of the same snapshot, in
/// alternating rounds.
async fn direct_get_floor(
    config: &Config,
    report: &mut Report,
    database: &NatsDatabase,
) -> Result<(), String> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let client = async_nats::connect(url.as_str()).await.map_err(err)?;
    let stream = async_nats::jetstream::new(client)
        .get_stream(database.snapshot_stream_name())
        .await
        .map_err(err)?;
    let snapshots = database.snapshot_store();
    let id: AggregateId = uuid_id();
    snapshots
        .save_snapshot(&Snapshot::new(&id, "BenchAccount", 10, sample_state(), 1))
        .await
        .map_err(err)?;
    // The UUID's text and the type are tokens as they are.
    let subject = format!("{PREFIX}.snapshots.l.BenchAccount.{id}");
    let (mut floor, mut ours) = (Samples::default(), Samples::default());
    for _ in 0..10 {
        for _ in 0..config.samples(std::time::Duration::from_micros(200)) / 10 {
            floor
                .time(stream.direct_get_last_for_subject(subject.as_str()))
                .await
                .map_err(err)?;
            let found = ours
                .time(snapshots.get_snapshot(&id, "BenchAccount"))
                .await
                .map_err(err)?;
            assert_eq!(
                found.map(|s| s.version),
                Some(10),
                "the store reads the row"
            );
        }
    }
    let name = "direct get of the snapshot message";
    report.add(
        Section::Operations,
        Row::new("nats", format!("floor: {name}"), &floor),
    );
    report.add(
        Section::Operations,
        Row::new("nats", "get_snapshot, against the direct get", &ours)
            .against(name, floor.median())
            .target(Target::WithinFloor(1.5)),
    );
    Ok(())
}

pub(crate) async fn nats(config: &Config, report: &mut Report) -> Result<(), String> {
    let Some(database) = connect().await? else {
        return Ok(());
    };
    let targets = Targets {
        get_snapshot: Target::None,
        trailing: Target::None,
        full_replay: Target::None,
        head: Target::None,
        // A sync snapshot is a second message after the events' (no transaction spans two
        // streams): at most two round trips where the save is one, and a little more.
        saves: SaveTargets {
            sync: Target::WithinFloor(2.5),
            background: Target::WithinFloor(1.05),
            big: Target::None,
        },
        big_save: false,
    };
    let native: Arc<DynBackend> = Arc::new(database.clone());
    let pair = (&database.snapshot_store(), &database.event_store());
    let result = stores(("nats", &native), config, report, pair, None, &targets).await;
    let floor = match result {
        Ok(()) => direct_get_floor(config, report, &database).await,
        Err(e) => Err(e),
    };
    database.destroy().await.map_err(err)?;
    floor
}
