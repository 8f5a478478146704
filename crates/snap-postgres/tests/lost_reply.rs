//! An append whose reply is lost after the server committed it: the store tries the statement
//! again on another connection, and must report the append as done, never as a conflict with
//! itself. Otherwise `DeciderRepository::handle` reloads, decides again and applies one command
//! twice.
//!
//! A proxy between the pool and the server cuts the client's connection while the first try
//! is still running on the server. A trigger in the test's schema holds that first try for a
//! moment before it commits, so the test decides in which order the two tries meet.

mod support;

use std::time::Duration;

use snap_postgres::PostgresDatabase;
use snap_repo::{DeciderRepository, StorePair};
use snap_strategy::Never;
use snap_testkit::accounts::{AccountCommand, AccountDecider, AccountEvent};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use support::PgHarness;
use support::proxy::Proxy;
use uuid::Uuid;

const APPLICATION: &str = "snap-es-test-lost-reply";

/// Makes the next insert into the events table sleep `hold` before it goes on, once: the first
/// row of the next append takes the marker and sleeps; an append that meets the taken marker
/// waits for the first to end.
async fn hold_next_append(admin: &mut PgConnection, schema: &str, hold: Duration) {
    let statements = [
        format!("CREATE TABLE IF NOT EXISTS \"{schema}\".hold_marker (n int)"),
        format!("INSERT INTO \"{schema}\".hold_marker VALUES (1)"),
        format!(
            "CREATE OR REPLACE FUNCTION \"{schema}\".hold_once() RETURNS trigger
             LANGUAGE plpgsql AS $$
             BEGIN
                 DELETE FROM \"{schema}\".hold_marker WHERE n = 1;
                 IF FOUND THEN PERFORM pg_sleep({}); END IF;
                 RETURN NEW;
             END $$",
            hold.as_secs_f64()
        ),
        format!(
            "CREATE OR REPLACE TRIGGER hold_once BEFORE INSERT ON \"{schema}\".events
             FOR EACH ROW EXECUTE FUNCTION \"{schema}\".hold_once()"
        ),
    ];
    for statement in statements {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *admin)
            .await
            .expect("set up the held append");
    }
}

/// Waits until a backend of the test's pool sleeps in the trigger: the first try is running.
async fn wait_for_the_held_try(admin: &mut PgConnection) {
    for _ in 0..250 {
        let sleeping: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = $1 AND wait_event = 'PgSleep'",
        )
        .bind(APPLICATION)
        .fetch_one(&mut *admin)
        .await
        .expect("pg_stat_activity");
        if sleeping > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the first try never reached the trigger");
}

/// Waits until no backend of the test's pool runs a statement: the first try has ended.
async fn wait_for_the_first_try_to_end(admin: &mut PgConnection) {
    for _ in 0..500 {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = $1 AND state = 'active'",
        )
        .bind(APPLICATION)
        .fetch_one(&mut *admin)
        .await
        .expect("pg_stat_activity");
        if busy == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the first try never ended");
}

struct Setup {
    _harness: PgHarness,
    proxy: Proxy,
    database: PostgresDatabase,
    admin: PgConnection,
    repo: DeciderRepository<AccountDecider>,
}

async fn setup() -> Option<Setup> {
    let harness = PgHarness::new();
    if harness.is_unavailable() {
        return None;
    }
    let proxy = Proxy::start(harness.server_address()).await;
    let database = harness
        .options_via(&proxy.url(&support::database_url()))
        .application_name(APPLICATION)
        .max_connections(2)
        .connect()
        .await
        .expect("connect through the proxy");
    let admin = PgConnection::connect(&support::database_url())
        .await
        .expect("an admin connection");
    let repo = DeciderRepository::<AccountDecider>::builder(StorePair::events_only(
        database.event_store(),
    ))
    .strategy(Never)
    .build()
    .expect("a repository");
    Some(Setup {
        _harness: harness,
        proxy,
        database,
        admin,
        repo,
    })
}

/// The deposits stored for the account, in order.
async fn deposits(database: &PostgresDatabase, id: Uuid) -> Vec<i64> {
    use snap_core::EventStore;
    database
        .event_store()
        .load(&id.into(), "Account", 0, None)
        .await
        .expect("load")
        .iter()
        .filter_map(|e| serde_json::from_value::<AccountEvent>(e.payload.clone()).ok())
        .filter_map(|e| match e {
            AccountEvent::Deposited { amount } => Some(amount),
            _ => None,
        })
        .collect()
}

/// The retry starts while the first try is still uncommitted, waits on it, and meets its rows
/// as a unique violation once it commits: the append is ours, so the command succeeds once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_append_that_meets_its_own_commit_is_not_a_conflict() {
    let Some(mut s) = setup().await else {
        return;
    };
    let id = Uuid::new_v4();
    s.repo
        .handle(id, &AccountCommand::Open("ada".into()))
        .await
        .unwrap();
    hold_next_append(
        &mut s.admin,
        s.database.schema(),
        Duration::from_millis(1_500),
    )
    .await;
    let handle = tokio::spawn({
        let repo = s.repo.clone();
        async move { repo.handle(id, &AccountCommand::Deposit(10)).await }
    });
    wait_for_the_held_try(&mut s.admin).await;
    s.proxy.cut();
    let handled = handle.await.unwrap().expect("the deposit is reported done");
    assert_eq!((handled.version, handled.attempts), (2, 1));
    assert_eq!(deposits(&s.database, id).await, vec![10], "applied once");
    assert_eq!(s.repo.stats().conflicts, 0);
}

/// The retry starts after the first try committed: the stream is already past the expected
/// version, and the first event in place is ours, so the command succeeds once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_append_after_its_own_commit_is_not_a_conflict() {
    let Some(mut s) = setup().await else {
        return;
    };
    let id = Uuid::new_v4();
    s.repo
        .handle(id, &AccountCommand::Open("ada".into()))
        .await
        .unwrap();
    hold_next_append(
        &mut s.admin,
        s.database.schema(),
        Duration::from_millis(500),
    )
    .await;
    let handle = tokio::spawn({
        let repo = s.repo.clone();
        async move { repo.handle(id, &AccountCommand::Deposit(10)).await }
    });
    wait_for_the_held_try(&mut s.admin).await;
    s.proxy.pause(true);
    s.proxy.cut();
    wait_for_the_first_try_to_end(&mut s.admin).await;
    s.proxy.pause(false);
    let handled = handle.await.unwrap().expect("the deposit is reported done");
    assert_eq!((handled.version, handled.attempts), (2, 1));
    assert_eq!(deposits(&s.database, id).await, vec![10], "applied once");
    assert_eq!(s.repo.stats().conflicts, 0);
}
