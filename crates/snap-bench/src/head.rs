//! A load through a snapshot at the head of a long stream, on a pool whose connections served
//! the stream's reads while it was short: what a long-lived application meets. A head query
//! whose cached plan reads every event of the stream shows here as a load that grows with the
//! stream instead of staying near the floor.

use std::sync::Arc;

use snap_es::{AggregateId, AggregateRepository, DynBackend, EventStore};
use uuid::Uuid;

use crate::Config;
use crate::aggregate::BenchAccount;
use crate::report::{Report, Row, Section, Target};
use crate::scenario::{err, time_loads};

/// Loads while the stream is short, enough for every pooled connection to cache its plans.
const WARM_LOADS: usize = 64;
/// Events in the stream while the pool warms.
const SHORT: u64 = 10;

/// Adds the row: a stream of `config.long_stream()` events, snapshotted at its head, loaded
/// through the repository after the pool warmed on the short stream.
pub(crate) async fn head_row<E: EventStore>(
    (backend, native): (&'static str, &Arc<DynBackend>),
    config: &Config,
    report: &mut Report,
    event_store: &E,
    floor: Option<(&'static str, std::time::Duration)>,
    target: Target,
) -> Result<(), String> {
    let through = AggregateRepository::<BenchAccount>::builder(Arc::clone(native))
        .build()
        .map_err(err)?;
    let id = &AggregateId::from(Uuid::new_v4());
    append_more(event_store, id, 0, SHORT).await?;
    let snapshot_at_head = |repo: &AggregateRepository<BenchAccount>| {
        let (repo, id) = (repo.clone(), id.clone());
        async move {
            let root = repo.load(&id).await.map_err(err)?;
            repo.create_snapshot(&root).await.map_err(err)?;
            Ok::<_, String>(())
        }
    };
    snapshot_at_head(&through).await?;
    // Concurrent loads, so every pooled connection serves some of them.
    for _ in 0..WARM_LOADS / 8 {
        let mut loads = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (repo, id) = (through.clone(), id.clone());
            loads.spawn(async move { repo.load(id).await.map(|_| ()) });
        }
        while let Some(loaded) = loads.join_next().await {
            loaded.map_err(err)?.map_err(err)?;
        }
    }
    let long = config.long_stream();
    append_more(event_store, id, SHORT, long).await?;
    snapshot_at_head(&through).await?;
    let hits = through.stats().snapshot_hits;
    let samples = time_loads(config, &through, id).await?;
    if through.stats().snapshot_hits <= hits {
        return Err(format!("{backend}: the head load did not use its snapshot"));
    }
    let mut row = Row::new(
        backend,
        format!("load {long}: snapshot at the head, pool warmed on {SHORT} events"),
        &samples,
    );
    if let Some((name, median)) = floor {
        row = row.against(name, median).target(target);
    }
    report.add(Section::Operations, row);
    Ok(())
}

/// Appends events `from + 1 ..= to` to the stream.
async fn append_more<E: EventStore>(
    store: &E,
    id: &AggregateId,
    from: u64,
    to: u64,
) -> Result<(), String> {
    let mut version = from;
    while version < to {
        let batch = 1_000.min(to - version);
        version = store
            .append(
                id,
                "BenchAccount",
                version,
                crate::aggregate::events(version + 1, batch),
            )
            .await
            .map_err(err)?;
    }
    Ok(())
}
