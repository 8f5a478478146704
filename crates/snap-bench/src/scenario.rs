//! What is measured on each backend, and the floors it is judged against.

use std::sync::Arc;
use std::time::Duration;

use snap_es::memory::InMemoryDatabase;
use snap_es::postgres::{PostgresDatabase, PostgresOptions};
use snap_es::sqlite::{Blocking, SqliteOptions};
use snap_es::{
    AggregateId, AggregateRepository, AggregateRoot, DynBackend, EventStore, Snapshot,
    SnapshotMode, SnapshotStore, StorePair, create_snapshot_strategy,
};
use uuid::Uuid;

use crate::Config;
use crate::aggregate::{BenchAccount, events, sample_state};
use crate::floor::Floor;
use crate::measure::Samples;
use crate::report::{LoadPoint, Report, Row, Section, Target};
use crate::saves::{SaveTargets, big_save_rows, save_rows, throughput};

/// Events per append while seeding a long stream.
const SEED_BATCH: u64 = 1_000;
/// Events after the snapshot in the worst case of `Threshold(100)`.
const TRAILING: u64 = 99;
/// Rounds that alternate the floor and the store, so drift hits both alike.
const ROUNDS: usize = 10;

/// The targets of one backend (docs/benchmarks.md, "Targets").
pub(crate) struct Targets {
    pub(crate) get_snapshot: Target,
    pub(crate) trailing: Target,
    /// The full replay against the decode floor.
    pub(crate) full_replay: Target,
    /// A load through a snapshot at the head, against the floor.
    pub(crate) head: Target,
    pub(crate) saves: SaveTargets,
    /// Whether the backend takes one save of 10,000 events (a NATS message holds 1 MiB).
    pub(crate) big_save: bool,
}

/// The aggregates a run reads.
struct Fixture {
    /// Aggregates with a snapshot at version 10, read in turn by the `get_snapshot` rows.
    snapshot_ids: Vec<AggregateId>,
    /// As many with string ids (`"account-000042"`).
    named_snapshot_ids: Vec<AggregateId>,
    /// A stream of `long_stream()` events and no snapshot.
    replay_id: AggregateId,
    /// A stream of `long_stream() - 1` events with a snapshot 99 events before the head.
    trailing_id: AggregateId,
    /// The same with a string id.
    named_trailing_id: AggregateId,
}

/// A fresh UUID aggregate id.
pub(crate) fn uuid_id() -> AggregateId {
    Uuid::new_v4().into()
}

/// A string aggregate id of the shape applications use, `"account-000042"`, unique in a run.
pub(crate) fn named_id(n: usize) -> AggregateId {
    let run = std::process::id();
    AggregateId::parse(&format!("account-{run}-{n:06}")).expect("a valid string id")
}

pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn seed<S: SnapshotStore, E: EventStore>(
    config: &Config,
    snapshots: &S,
    event_store: &E,
) -> Result<Fixture, String> {
    let count = if config.quick { 100 } else { 1_000 };
    let mut snapshot_ids = Vec::with_capacity(count);
    let mut named_snapshot_ids = Vec::with_capacity(count);
    for n in 0..count {
        for (id, ids) in [
            (uuid_id(), &mut snapshot_ids),
            (named_id(n), &mut named_snapshot_ids),
        ] {
            let snapshot = Snapshot::new(&id, "BenchAccount", 10, sample_state(), 1);
            snapshots.save_snapshot(&snapshot).await.map_err(err)?;
            ids.push(id);
        }
    }
    let long = config.long_stream();
    let replay_id = uuid_id();
    append_stream(event_store, &replay_id, long).await?;
    let trailing_id = uuid_id();
    trailing_stream(config, (snapshots, event_store), &trailing_id).await?;
    let named_trailing_id = named_id(count);
    trailing_stream(config, (snapshots, event_store), &named_trailing_id).await?;
    Ok(Fixture {
        snapshot_ids,
        named_snapshot_ids,
        replay_id,
        trailing_id,
        named_trailing_id,
    })
}

/// A stream of `long_stream() - 1` events with a snapshot 99 events before the head; the
/// snapshot holds the real state at its version, so the trailing load can be checked.
async fn trailing_stream<S: SnapshotStore, E: EventStore>(
    config: &Config,
    (snapshots, event_store): (&S, &E),
    id: &AggregateId,
) -> Result<(), String> {
    let head = config.long_stream() - 1;
    append_stream(event_store, id, head).await?;
    let at = head - TRAILING;
    let mut root = AggregateRoot::<BenchAccount>::new(id);
    for event in event_store
        .load(id, "BenchAccount", 0, Some(at))
        .await
        .map_err(err)?
    {
        root.apply_recorded(&event).map_err(err)?;
    }
    snapshots
        .save_snapshot(&root.to_snapshot().map_err(err)?)
        .await
        .map_err(err)
}

async fn append_stream<E: EventStore>(
    store: &E,
    id: &AggregateId,
    count: u64,
) -> Result<(), String> {
    let mut version = 0;
    while version < count {
        let batch = SEED_BATCH.min(count - version);
        version = store
            .append(id, "BenchAccount", version, events(version + 1, batch))
            .await
            .map_err(err)?;
    }
    Ok(())
}

/// Times `get_snapshot` through the store, interleaved with the floor when there is one.
async fn get_snapshot_rows<S: SnapshotStore>(
    config: &Config,
    snapshots: &S,
    ids: &[AggregateId],
    mut floor: Option<&mut Floor>,
) -> Result<(Samples, Samples), String> {
    let (mut floor_samples, mut store_samples) = (Samples::default(), Samples::default());
    let probe = std::time::Instant::now();
    snapshots
        .get_snapshot(&ids[0], "BenchAccount")
        .await
        .map_err(err)?;
    let per_round = config.samples(probe.elapsed()).div_ceil(ROUNDS);
    let mut next = ids.iter().cycle();
    for _ in 0..ROUNDS {
        if let Some(floor) = floor.as_deref_mut() {
            for _ in 0..per_round {
                let id = next.next().ok_or("no ids")?;
                let version = floor_samples.time(floor.get(id)).await?;
                assert_eq!(version, 10, "the floor reads the seeded row");
            }
        }
        for _ in 0..per_round {
            let id = next.next().ok_or("no ids")?;
            let found = store_samples
                .time(snapshots.get_snapshot(id, "BenchAccount"))
                .await
                .map_err(err)?;
            assert_eq!(
                found.map(|s| s.version),
                Some(10),
                "the store reads the seeded row"
            );
        }
    }
    Ok((floor_samples, store_samples))
}

/// The rows every backend reports.
/// Loads go through the repository on the backend, as an application's do; the full replay
/// of the plain event store (a path of its own) is what they must equal.
fn repositories<E: EventStore + Clone>(
    native: &Arc<DynBackend>,
    event_store: &E,
) -> Result<
    (
        AggregateRepository<BenchAccount>,
        AggregateRepository<BenchAccount>,
    ),
    String,
> {
    let through = AggregateRepository::<BenchAccount>::builder(Arc::clone(native))
        .policy(create_snapshot_strategy(SnapshotMode::Manual, 1).map_err(err)?)
        .build()
        .map_err(err)?;
    let replaying =
        AggregateRepository::<BenchAccount>::builder(StorePair::events_only(event_store.clone()))
            .build()
            .map_err(err)?;
    Ok((through, replaying))
}

/// The `get_snapshot` rows, UUID and string ids, and the floor's; returns the floor's median.
async fn snapshot_rows<S: SnapshotStore>(
    backend: &'static str,
    config: &Config,
    report: &mut Report,
    (snapshots, fixture): (&S, &Fixture),
    floor: Option<(&'static str, &mut Floor)>,
    target: Target,
) -> Result<Duration, String> {
    let floor_name = floor.as_ref().map(|(name, _)| *name);
    let (floor_samples, store_samples) = get_snapshot_rows(
        config,
        snapshots,
        &fixture.snapshot_ids,
        floor.map(|(_, f)| f),
    )
    .await?;
    let floor_median = floor_samples.median();
    if let Some(name) = floor_name {
        report.add(
            Section::Operations,
            Row::new(backend, format!("floor: {name}"), &floor_samples),
        );
    }
    let with_floor = |row: Row| match floor_name {
        Some(name) => row.against(name, floor_median),
        None => row,
    };
    report.add(
        Section::Operations,
        with_floor(Row::new(backend, "get_snapshot", &store_samples)).target(target),
    );
    // String ids, against the same floor: what a UUID id does not pay.
    let (_, named) =
        get_snapshot_rows(config, snapshots, &fixture.named_snapshot_ids, None).await?;
    report.add(
        Section::Operations,
        with_floor(Row::new(backend, "get_snapshot, string ids", &named)).target(target),
    );
    Ok(floor_median)
}

pub(crate) async fn stores<S: SnapshotStore + Clone, E: EventStore + Clone>(
    (backend, native): (&'static str, &Arc<DynBackend>),
    config: &Config,
    report: &mut Report,
    (snapshots, event_store): (&S, &E),
    mut floor: Option<(&'static str, &mut Floor)>,
    targets: &Targets,
) -> Result<(), String> {
    Report::progress(&format!("{backend}: seeding"));
    let fixture = seed(config, snapshots, event_store).await?;

    let floor_name = floor.as_ref().map(|(name, _)| *name);
    let floor_median = snapshot_rows(
        backend,
        config,
        report,
        (snapshots, &fixture),
        floor.as_mut().map(|(name, f)| (*name, &mut **f)),
        targets.get_snapshot,
    )
    .await?;
    let with_floor = |row: Row| match floor_name {
        Some(name) => row.against(name, floor_median),
        None => row,
    };

    let (through, replaying) = repositories(native, event_store)?;

    // Correctness first: the snapshot load must equal the full replay of the same stream.
    same_as_replay(backend, (&through, &replaying), &fixture.trailing_id).await?;
    same_as_replay(backend, (&through, &replaying), &fixture.named_trailing_id).await?;
    trailing_rows(
        backend,
        config,
        report,
        &through,
        (&fixture.trailing_id, &fixture.named_trailing_id),
        (
            floor.as_mut().map(|(name, f)| (*name, &mut **f)),
            floor_median,
        ),
        targets.trailing,
    )
    .await?;

    crate::replay::replay_rows(
        backend,
        config,
        report,
        (&through, event_store),
        (&fixture.replay_id, floor.as_mut().map(|(_, f)| &mut **f)),
        targets.full_replay,
    )
    .await?;

    load_table(
        (backend, floor_name.map(|_| floor_median)),
        config,
        report,
        snapshots,
        event_store,
        &through,
    )
    .await?;

    crate::head::head_row(
        (backend, native),
        config,
        report,
        event_store,
        floor_name.map(|name| (name, floor_median)),
        targets.head,
    )
    .await?;

    let append = append_samples(config, event_store).await?;
    report.add(
        Section::Operations,
        with_floor(Row::new(backend, "append 100 events in one call", &append)),
    );

    let mut floor = floor.map(|(_, f)| f);
    save_rows(
        backend,
        config,
        report,
        native,
        floor.as_deref_mut(),
        &targets.saves,
    )
    .await?;
    if targets.big_save {
        big_save_rows(backend, config, report, native, floor, targets.saves.big).await?;
    } else {
        Report::progress(&format!(
            "{backend}: one save of 10,000 events is over what one save may hold: not measured"
        ));
    }
    let floor_rate = floor_name.map(|_| 1.0 / floor_median.as_secs_f64().max(1e-12));
    throughput(
        backend,
        config,
        report,
        snapshots,
        &fixture.snapshot_ids,
        floor_rate,
    )
    .await?;
    Ok(())
}

/// Loads `id` through its snapshot and by full replay: an error unless both give the same
/// state and version and the first used the snapshot.
async fn same_as_replay(
    backend: &str,
    (through, replaying): (
        &AggregateRepository<BenchAccount>,
        &AggregateRepository<BenchAccount>,
    ),
    id: &AggregateId,
) -> Result<(), String> {
    let hits = through.stats().snapshot_hits;
    let loaded = through.load(id).await.map_err(err)?;
    let replayed = replaying.load(id).await.map_err(err)?;
    if loaded.state() != replayed.state() || loaded.version() != replayed.version() {
        return Err(format!(
            "{backend}: a snapshot load differs from the full replay"
        ));
    }
    if through.stats().snapshot_hits != hits + 1 {
        return Err(format!(
            "{backend}: the load of {id} did not use its snapshot"
        ));
    }
    Ok(())
}

/// The load of the long aggregate through its snapshot, and the same two reads by bare
/// SELECTs on the floor's connection.
async fn trailing_rows(
    backend: &'static str,
    config: &Config,
    report: &mut Report,
    through: &AggregateRepository<BenchAccount>,
    (trailing_id, named_id): (&AggregateId, &AggregateId),
    (mut floor, floor_median): (Option<(&'static str, &mut Floor)>, std::time::Duration),
    target: Target,
) -> Result<(), String> {
    let long = config.long_stream();
    let trailing = time_loads(config, through, trailing_id).await?;
    let named = time_loads(config, through, named_id).await?;
    let mut named = Row::new(
        backend,
        format!("load {}: snapshot + {TRAILING} events, string id", long - 1),
        &named,
    )
    .target(target);
    let mut row = Row::new(
        backend,
        format!("load {}: snapshot + {TRAILING} events", long - 1),
        &trailing,
    )
    .target(target);
    if let Some((name, floor)) = floor.as_mut() {
        let at = long - 1 - TRAILING;
        let bare = bare_reads(floor, trailing_id, at, trailing.len()).await?;
        report.add(
            Section::Operations,
            Row::new(
                backend,
                format!("bare SELECTs: snapshot row + {TRAILING} event rows"),
                &bare,
            )
            .against(name, floor_median),
        );
        row = row.against(name, floor_median);
        named = named.against(name, floor_median);
    }
    report.add(Section::Operations, row);
    report.add(Section::Operations, named);
    Ok(())
}

/// What a snapshot load's two reads cost without the stores and the repository: the snapshot
/// row and the event rows after `at`, by bare SELECTs on the floor's connection.
async fn bare_reads(
    floor: &mut Floor,
    id: &AggregateId,
    at: u64,
    samples: usize,
) -> Result<Samples, String> {
    let mut bare = Samples::default();
    for _ in 0..samples.min(2_000) {
        let started = std::time::Instant::now();
        floor.get(id).await?;
        let count = floor.tail(id, at).await?;
        bare.push(started.elapsed());
        assert_eq!(
            count as u64, TRAILING,
            "the bare tail reads the trailing events"
        );
    }
    Ok(bare)
}

/// Loads of a stream of each length in `config.event_counts` through the repository: by full
/// replay before it has a snapshot, then through a snapshot 99 events before the head (the
/// worst case of `Threshold(100)`).
async fn load_table<S: SnapshotStore, E: EventStore>(
    (backend, floor): (&'static str, Option<std::time::Duration>),
    config: &Config,
    report: &mut Report,
    snapshots: &S,
    event_store: &E,
    through: &AggregateRepository<BenchAccount>,
) -> Result<(), String> {
    for &n in &config.event_counts {
        let id = &uuid_id();
        append_stream(event_store, id, n).await?;
        let full = time_loads(config, through, id).await?;
        let trailing = if n > TRAILING {
            let root = through.load_at(id, n - TRAILING).await.map_err(err)?;
            snapshots
                .save_snapshot(&root.to_snapshot().map_err(err)?)
                .await
                .map_err(err)?;
            TRAILING
        } else {
            n
        };
        let fast = time_loads(config, through, id).await?;
        report.add_load(LoadPoint::new(backend, n, trailing, &full, &fast).against(floor));
    }
    Ok(())
}

/// Loads of one aggregate through `repo`, as many as fit the sample budget.
pub(crate) async fn time_loads(
    config: &Config,
    repo: &AggregateRepository<BenchAccount>,
    id: &AggregateId,
) -> Result<Samples, String> {
    let probe = std::time::Instant::now();
    repo.load(id).await.map_err(err)?;
    let mut samples = Samples::default();
    for _ in 0..config.samples(probe.elapsed()) {
        samples.time(repo.load(id)).await.map_err(err)?;
    }
    Ok(samples)
}

/// Appends of 100 events to new streams, one call each.
async fn append_samples<E: EventStore>(
    config: &Config,
    event_store: &E,
) -> Result<Samples, String> {
    let mut append = Samples::default();
    for _ in 0..if config.quick { 5 } else { 200 } {
        let version = append
            .time(event_store.append(&uuid_id(), "BenchAccount", 0, events(1, 100)))
            .await
            .map_err(err)?;
        assert_eq!(version, 100, "one call appends all 100");
    }
    Ok(append)
}

pub(crate) async fn memory(config: &Config, report: &mut Report) -> Result<(), String> {
    let targets = Targets {
        get_snapshot: Target::None,
        trailing: Target::None,
        full_replay: Target::WithinFloor(1.5),
        head: Target::None,
        saves: SaveTargets {
            sync: Target::None,
            background: Target::None,
            big: Target::None,
        },
        big_save: true,
    };
    let database = InMemoryDatabase::new();
    let native: Arc<DynBackend> = Arc::new(database.clone());
    let stores_ = (&database.snapshot_store(), &database.event_store());
    stores(("memory", &native), config, report, stores_, None, &targets).await
}

pub(crate) async fn sqlite(config: &Config, report: &mut Report) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("snap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(err)?;
    let path = dir.join("bench.db");
    let database = SqliteOptions::file(&path).open().await.map_err(err)?;
    let connection = rusqlite::Connection::open(&path).map_err(err)?;
    // As durable as the stores (`Durability::Full`): a bundled SQLite in WAL mode otherwise
    // syncs nothing at commit, and the bare insert would be measured without its fsync.
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    let mut floor = Floor::Sqlite(connection);
    let targets = Targets {
        get_snapshot: Target::WithinFloor(1.5),
        trailing: Target::WithinFloor(30.0),
        full_replay: Target::WithinFloor(1.5),
        head: Target::None,
        saves: SaveTargets {
            sync: Target::WithinFloor(1.2),
            background: Target::None,
            big: Target::RateAtLeast(0.7),
        },
        big_save: true,
    };
    let native: Arc<DynBackend> = Arc::new(database.clone());
    let result = stores(
        ("sqlite", &native),
        config,
        report,
        (&database.snapshot_store(), &database.event_store()),
        Some(("rusqlite PK SELECT", &mut floor)),
        &targets,
    )
    .await;

    // The same read with a thread hop on every call, for scale: what `block_in_place` saves.
    if result.is_ok() {
        let hopping = SqliteOptions::file(&path)
            .blocking(Blocking::SpawnBlocking)
            .open()
            .await
            .map_err(err)?;
        let ids: Vec<AggregateId> = {
            let Floor::Sqlite(connection) = &floor else {
                unreachable!()
            };
            let mut statement = connection
                .prepare("SELECT aggregate_id FROM snapshots WHERE version = 10 LIMIT 100")
                .map_err(err)?;
            statement
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(err)?
                .filter_map(|id| id.ok().and_then(|id| Uuid::parse_str(&id).ok()))
                .map(AggregateId::from)
                .collect()
        };
        let (floor_samples, hop_samples) =
            get_snapshot_rows(config, &hopping.snapshot_store(), &ids, Some(&mut floor)).await?;
        report.add(
            Section::Operations,
            Row::new(
                "sqlite",
                "get_snapshot, spawn_blocking on every call",
                &hop_samples,
            )
            .against("rusqlite PK SELECT", floor_samples.median()),
        );
        hopping.close();
    }
    database.close();
    drop(floor);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

pub(crate) async fn postgres(config: &Config, report: &mut Report) -> Result<(), String> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut admin = match <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
        Ok(connection) => connection,
        Err(e) if std::env::var("SNAP_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            return Err(format!("PostgreSQL at {url} is unreachable: {e}"));
        }
        Err(e) => {
            Report::progress(&format!("SKIPPED postgres: {url} is unreachable: {e}"));
            return Ok(());
        }
    };
    sqlx::query("DROP SCHEMA IF EXISTS snap_bench CASCADE")
        .execute(&mut admin)
        .await
        .map_err(err)?;
    let database: PostgresDatabase = PostgresOptions::new(&url)
        .schema("snap_bench")
        .application_name("snap-bench")
        .connect()
        .await
        .map_err(err)?;
    let mut floor = Floor::Postgres(
        admin,
        "SELECT version, schema_version, state, created_at, updated_at FROM snap_bench.snapshots
         WHERE aggregate_type = $1 AND aggregate_id = $2"
            .to_owned(),
    );
    let targets = Targets {
        get_snapshot: Target::WithinFloor(1.3),
        trailing: Target::WithinFloor(3.0),
        full_replay: Target::WithinFloor(1.5),
        head: Target::WithinFloor(1.5),
        saves: SaveTargets {
            sync: Target::WithinFloor(1.2),
            background: Target::WithinFloor(1.05),
            big: Target::RateAtLeast(0.7),
        },
        big_save: true,
    };
    let native: Arc<DynBackend> = Arc::new(database.clone());
    let result = stores(
        ("postgres", &native),
        config,
        report,
        (&database.snapshot_store(), &database.event_store()),
        Some(("PostgreSQL PK SELECT", &mut floor)),
        &targets,
    )
    .await;
    // The floor's query through the store's pool: what acquiring a pooled connection costs.
    if result.is_ok() {
        let Floor::Postgres(_, sql) = &floor else {
            unreachable!()
        };
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT aggregate_id FROM snap_bench.snapshots WHERE version = 10 LIMIT 100",
        )
        .fetch_all(database.pool())
        .await
        .map_err(err)?;
        let mut pooled = Samples::default();
        for id in ids
            .iter()
            .cycle()
            .take(config.samples(Duration::from_micros(150)))
        {
            pooled
                .time(
                    sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .bind("BenchAccount")
                        .bind(id)
                        .fetch_one(database.pool()),
                )
                .await
                .map_err(err)?;
        }
        report.add(
            Section::Operations,
            Row::new("postgres", "the floor's SELECT through the pool", &pooled),
        );
    }
    database.close().await;
    result
}
