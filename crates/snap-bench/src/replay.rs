//! The full replay of a long stream through the repository, against the least a replay must
//! do: read every event's payload and decode it into the event type.

use serde::Deserialize as _;
use snap_es::{AggregateId, AggregateRepository, EventStore};

use crate::Config;
use crate::aggregate::{BenchAccount, BenchEvent};
use crate::floor::Floor;
use crate::measure::Samples;
use crate::report::{Report, Row, Section, Target};
use crate::scenario::err;

/// The decode floor of a backend without a database: the stored payloads, already in memory,
/// decoded into the event type.
async fn decode_in_memory<E: EventStore>(
    event_store: &E,
    id: &AggregateId,
    samples: usize,
) -> Result<Samples, String> {
    let stored = event_store
        .load(id, "BenchAccount", 0, None)
        .await
        .map_err(err)?;
    let mut floor = Samples::default();
    for _ in 0..samples {
        let started = std::time::Instant::now();
        for event in &stored {
            BenchEvent::deserialize(&event.payload).map_err(err)?;
        }
        floor.push(started.elapsed());
    }
    Ok(floor)
}

/// The full replay of the stream `id` (it has no snapshot) through the repository, the decode
/// floor beside it in alternating rounds, and the plain event store's read for scale.
pub(crate) async fn replay_rows<E: EventStore>(
    backend: &'static str,
    config: &Config,
    report: &mut Report,
    (through, event_store): (&AggregateRepository<BenchAccount>, &E),
    (id, mut floor): (&AggregateId, Option<&mut Floor>),
    target: Target,
) -> Result<(), String> {
    let long = config.long_stream();
    let (mut replay, mut bare) = (Samples::default(), Samples::default());
    let probe = std::time::Instant::now();
    through.load(id).await.map_err(err)?;
    let samples = config
        .samples(probe.elapsed())
        .min(if config.quick { 5 } else { 15 });
    for _ in 0..samples {
        let root = replay.time(through.load(id)).await.map_err(err)?;
        assert_eq!(root.version(), long, "the replay applies every event");
        if let Some(floor) = floor.as_deref_mut() {
            let count = bare.time(floor.decode(id)).await?;
            assert_eq!(count, long, "the floor decodes every event");
        }
    }
    if floor.is_none() {
        bare = decode_in_memory(event_store, id, samples).await?;
    }
    let floor_name = "bare read + decode into the event type";
    report.add(
        Section::Operations,
        Row::new(
            backend,
            format!("floor: {floor_name}, {long} events"),
            &bare,
        ),
    );
    report.add(
        Section::Operations,
        Row::new(backend, format!("full replay of {long} events"), &replay)
            .against(floor_name, bare.median())
            .target(target),
    );

    // The plain event store's read, JSON parsed into values, no apply: for scale.
    let mut read = Samples::default();
    for _ in 0..replay.len() {
        let events = read
            .time(event_store.load(id, "BenchAccount", 0, None))
            .await
            .map_err(err)?;
        assert_eq!(events.len() as u64, long, "the load reads every event");
    }
    report.add(
        Section::Operations,
        Row::new(backend, format!("event store: read {long} events"), &read),
    );
    Ok(())
}
