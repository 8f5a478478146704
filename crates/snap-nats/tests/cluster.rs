//! A three-node JetStream cluster on loopback, started by the test itself (three
//! `nats-server` processes with their own ports and store directories, replicas = 3). While 8
//! tasks save continuously, one node is killed with SIGKILL and later restarted: every save
//! acknowledged before, during or after the kill is there afterwards, loads through snapshots
//! equal full replays, and the saves resume without restarting the application.
//!
//! The server binary is `NATS_SERVER_BIN`, or `nats-server` on the path, or
//! `/usr/sbin/nats-server`. With `SNAP_REQUIRE_NATS=1` a missing binary fails the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use snap_core::AggregateId;
use snap_nats::{NatsDatabase, NatsOptions};
use snap_repo::{AggregateRepository, RepositoryError, StorePair};
use snap_strategy::{SnapshotMode, Threshold};
use snap_testkit::accounts::{AccountEvent, AccountV1};

const TASKS: usize = 8;

fn server_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("NATS_SERVER_BIN") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/sbin/nats-server");
        debian.is_file().then_some(debian)
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// One server of the cluster; killed when dropped.
struct Node {
    name: String,
    port: u16,
    cluster_port: u16,
    routes: String,
    dir: PathBuf,
    server: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join(format!("{}.log", self.name)))
            .expect("a log file for the server");
        let child = Command::new(&self.server)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-n", &self.name, "--cluster_name", "snapes"])
            .args([
                "-cluster",
                &format!("nats://127.0.0.1:{}", self.cluster_port),
            ])
            .args(["-routes", &self.routes])
            .arg("-js")
            .arg("-sd")
            .arg(self.dir.join(&self.name))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
    }

    /// SIGKILL: the server gets no chance to flush or leave the cluster.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn cluster(server: &Path, dir: &Path) -> Vec<Node> {
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let routes = ports
        .iter()
        .map(|(_, cluster)| format!("nats://127.0.0.1:{cluster}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, &(port, cluster_port))| Node {
            name: format!("n{}", i + 1),
            port,
            cluster_port,
            routes: routes.clone(),
            dir: dir.to_owned(),
            server: server.to_owned(),
            child: None,
        })
        .collect();
    for node in &mut nodes {
        node.start();
    }
    nodes
}

/// Connects once the cluster has elected its JetStream leader and can create replicated
/// streams.
async fn connect(url: &str) -> NatsDatabase {
    let started = Instant::now();
    loop {
        match NatsOptions::new(url)
            .prefix("cluster")
            .replicas(3)
            .connect()
            .await
        {
            Ok(database) => return database,
            Err(error) if started.elapsed() < Duration::from_mins(1) => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => panic!("the cluster never came up: {error}"),
        }
    }
}

/// What one saving task saw.
#[derive(Debug, Default)]
struct Tally {
    acknowledged: u64,
    last_acknowledged: u64,
    failed: u64,
    failed_retryable: u64,
}

#[allow(
    clippy::print_stderr,
    reason = "SNAP_CLUSTER_DEBUG prints each failure"
)]
async fn save_until(
    repo: AggregateRepository<AccountV1>,
    id: AggregateId,
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::default();
    while !stop.load(Ordering::SeqCst) {
        let root = match repo.load(&id).await {
            Ok(root) => Some(root),
            Err(RepositoryError::AggregateNotFound { .. }) => None,
            Err(error) => {
                let retryable =
                    matches!(&error, RepositoryError::EventStore(e) if e.is_retryable());
                // A failure the caller may not retry is always shown: it names a fault to find.
                if !retryable || std::env::var("SNAP_CLUSTER_DEBUG").is_ok() {
                    eprintln!("load failed: {error}: {error:?}");
                }
                tally.failed += 1;
                if retryable {
                    tally.failed_retryable += 1;
                }
                failures.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut root = root.unwrap_or_else(|| {
            let mut root = repo.create_new(&id);
            root.record(AccountEvent::Opened {
                owner: "cluster".into(),
            });
            root
        });
        root.record(AccountEvent::Deposited { amount: 1 });
        match repo.save(&mut root).await {
            Ok(version) => {
                tally.acknowledged += 1;
                tally.last_acknowledged = version;
            }
            Err(error) => {
                let retryable = matches!(&error, RepositoryError::EventStore(e) if e.is_retryable())
                    || matches!(error, RepositoryError::Concurrency { .. });
                if !retryable || std::env::var("SNAP_CLUSTER_DEBUG").is_ok() {
                    eprintln!("save failed: {error}: {error:?}");
                }
                tally.failed += 1;
                if retryable {
                    tally.failed_retryable += 1;
                }
                failures.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_acknowledged_save() {
    let Some(server) = server_binary() else {
        assert!(
            !std::env::var("SNAP_REQUIRE_NATS").is_ok_and(|v| v == "1"),
            "nats-server is required (SNAP_REQUIRE_NATS=1) and was not found"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("snap-nats-cluster-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a directory for the cluster");
    let mut nodes = cluster(&server, &dir);
    let url = nodes
        .iter()
        .map(|node| format!("nats://127.0.0.1:{}", node.port))
        .collect::<Vec<_>>()
        .join(",");
    let database = connect(&url).await;
    let repo = AggregateRepository::<AccountV1>::builder(database.clone())
        .strategy(Threshold(5))
        .mode(SnapshotMode::Sync)
        .build()
        .expect("a repository");

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let ids: Vec<AggregateId> = (0..TASKS)
        .map(|t| AggregateId::parse(&format!("account-{t}")).expect("an id"))
        .collect();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            tokio::spawn(save_until(
                repo.clone(),
                id.clone(),
                Arc::clone(&stop),
                Arc::clone(&failures),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    nodes[1].kill();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let failed_while_down = failures.load(Ordering::SeqCst);
    nodes[1].start();
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::SeqCst);
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.expect("a saving task"));
    }

    let events = database.event_store();
    let replay = AggregateRepository::<AccountV1>::builder(StorePair::events_only(events))
        .build()
        .expect("a replaying repository");
    let (mut acknowledged, mut failed, mut retryable, mut lost) = (0, 0, 0, 0);
    for (id, tally) in ids.iter().zip(&tallies) {
        acknowledged += tally.acknowledged;
        failed += tally.failed;
        retryable += tally.failed_retryable;
        let loaded = repo.load(id).await.expect("a load after the restart");
        let replayed = replay.load(id).await.expect("a replay after the restart");
        // One writer per aggregate: everything it was told is stored lies at or below the
        // head, in a dense stream (a replay checks for gaps).
        if replayed.version() < tally.last_acknowledged {
            lost += tally.last_acknowledged - replayed.version();
        }
        assert_eq!(loaded.version(), replayed.version(), "{id}");
        assert_eq!(
            loaded.state(),
            replayed.state(),
            "{id}: a snapshot load is the replay"
        );
        assert!(
            replayed.state().deposits >= tally.acknowledged,
            "{id}: {} deposits stored, {} acknowledged",
            replayed.state().deposits,
            tally.acknowledged
        );
    }
    eprintln!(
        "cluster kill: {acknowledged} saves acknowledged, {failed} failed ({retryable} retryable; \
         {failed_while_down} by the end of the outage), {lost} acknowledged events lost"
    );
    assert_eq!(lost, 0, "no acknowledged save is lost");
    assert!(acknowledged > 0, "the saves ran");
    // Saves resumed after the node came back, without a new connection.
    let before = tallies.iter().map(|t| t.acknowledged).sum::<u64>();
    let resumed = save_until_one(&repo, &ids[0]).await;
    assert!(
        resumed,
        "a save succeeds after the restart ({before} before)"
    );
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One more save of `id`, tried for up to 10 seconds.
async fn save_until_one(repo: &AggregateRepository<AccountV1>, id: &AggregateId) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(mut root) = repo.load(id).await {
            root.record(AccountEvent::Deposited { amount: 1 });
            if repo.save(&mut root).await.is_ok() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
