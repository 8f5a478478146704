//! A writer killed with SIGKILL at random points loses nothing it reported as committed: the
//! file opens again, every reported save is there, no append is half-written, and every
//! aggregate loads to the state of a full replay.
//!
//! The test re-runs its own binary as the writer (`writer_until_killed`, which does nothing
//! unless `SNAP_CRASH_DB` names a database) and kills it 20 times (times `SNAP_SOAK`).

#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    reason = "the verification helper panics like a test"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use snap_core::EventStore;
use snap_repo::{AggregateRepository, RepositoryError, StorePair};
use snap_sqlite::SqliteDatabase;
use snap_strategy::{SnapshotMode, Threshold};
use snap_testkit::accounts::{AccountEvent, AccountV1};
use uuid::Uuid;

const AGGREGATES: u128 = 4;

fn aggregate(n: u128) -> Uuid {
    Uuid::from_u128(0xc4a5_0000_0000_4000_8000_0000_0000_0000 + n)
}

/// The writer: saves batches of deposits to four accounts through a repository that
/// snapshots every third version, and prints `id version` after each save returns.
#[test]
#[allow(
    clippy::print_stdout,
    reason = "the writer reports commits to its parent"
)]
fn writer_until_killed() {
    let Ok(path) = std::env::var("SNAP_CRASH_DB") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let database = SqliteDatabase::open(&path)
            .await
            .expect("open the database");
        let repo = AggregateRepository::<AccountV1>::builder(StorePair::new(
            database.event_store(),
            database.snapshot_store(),
        ))
        .strategy(Threshold(3))
        .mode(SnapshotMode::Sync)
        .build()
        .expect("a repository");
        for round in 0_u64.. {
            let id = aggregate(u128::from(round) % AGGREGATES);
            let mut root = match repo.load(id).await {
                Ok(root) => root,
                Err(RepositoryError::AggregateNotFound { .. }) => {
                    let mut root = repo.create_new(id);
                    root.record(AccountEvent::Opened {
                        owner: "crash".into(),
                    });
                    root
                }
                Err(e) => panic!("load: {e}"),
            };
            // A batch of (amount % 5) + 1 deposits of `amount`, so a torn batch shows.
            let amount = i64::try_from(round % 1_000).expect("small") + 1;
            for _ in 0..=(amount % 5) {
                root.record(AccountEvent::Deposited { amount });
            }
            let version = repo.save(&mut root).await.expect("save");
            println!("{id} {version}");
        }
    });
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writers_lose_nothing_committed() {
    let dir = std::env::temp_dir().join(format!("snap-crash-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("crash.db");
    let mut seed = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % u128::from(u64::MAX),
    )
    .unwrap()
        | 1;
    eprintln!("crash test seed {seed}");
    let mut reported: BTreeMap<Uuid, u64> = BTreeMap::new();
    for kill in 0..20 * snap_testkit::soak_factor() {
        let lines_before_kill = 1 + xorshift(&mut seed) % 40;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "writer_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SNAP_CRASH_DB", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reports = 0;
        let started = Instant::now();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let mut parts = line.split_whitespace();
            let (Some(id), Some(version)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(id), Ok(version)) = (Uuid::parse_str(id), version.parse::<u64>()) else {
                continue;
            };
            let entry = reported.entry(id).or_default();
            *entry = (*entry).max(version);
            reports += 1;
            if reports >= lines_before_kill || started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
        // SIGKILL, at whatever point the writer has reached since its last report.
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(reports > 0, "kill {kill}: the writer reported nothing");
        verify(&path, &reported).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn verify(path: &std::path::Path, reported: &BTreeMap<Uuid, u64>) {
    let database = SqliteDatabase::open(path)
        .await
        .expect("the file opens after a kill");
    let events = database.event_store();
    let through = AggregateRepository::<AccountV1>::builder(StorePair::new(
        events.clone(),
        database.snapshot_store(),
    ))
    .build()
    .unwrap();
    let replay = AggregateRepository::<AccountV1>::builder(StorePair::events_only(events.clone()))
        .build()
        .unwrap();
    for n in 0..AGGREGATES {
        let id = aggregate(n);
        let head = events.current_version(&id.into(), "Account").await.unwrap();
        if let Some(&committed) = reported.get(&id) {
            assert!(
                head >= committed,
                "{id}: reported {committed}, stored {head}"
            );
        }
        if head == 0 {
            continue;
        }
        let stored = events.load(&id.into(), "Account", 0, None).await.unwrap();
        let versions: Vec<u64> = stored.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=head).collect::<Vec<_>>(), "{id}: a gap");
        // Every batch of deposits of one amount is whole.
        let amounts: Vec<i64> = stored
            .iter()
            .filter_map(|e| e.payload["Deposited"]["amount"].as_i64())
            .collect();
        for run in amounts.chunk_by(|a, b| a == b) {
            let size = usize::try_from(run[0] % 5).unwrap() + 1;
            assert_eq!(run.len() % size, 0, "{id}: a torn batch of {}", run[0]);
        }
        let loaded = through.load(id).await.unwrap();
        let replayed = replay.load(id).await.unwrap();
        assert_eq!(loaded.version(), head);
        assert_eq!(
            loaded.state(),
            replayed.state(),
            "{id}: snapshot load != replay"
        );
    }
    database.close();
}
