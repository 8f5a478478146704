//! String aggregate ids through the facade, on every backend (PostgreSQL for real when
//! `SNAP_REQUIRE_POSTGRES=1`): both repositories save, load, load at a version, verify and
//! rebuild aggregates whose ids are strings, beside UUID ids of the same type; bad ids are
//! refused with a typed error before anything is written.

use std::sync::Arc;

use snap_es::prelude::*;
use snap_es::{DynBackend, InvalidInput, SnapshotCheck, StorePair};
use snap_testkit::accounts::{AccountCommand, AccountDecider, AccountEvent, AccountV1};

/// What a backend leaves behind to delete.
enum Leftover {
    Nothing,
    #[cfg(feature = "postgres")]
    Schema(String),
    #[cfg(feature = "nats")]
    Stream(snap_es::nats::NatsDatabase),
}

/// The backends of this build: memory, SQLite (a file-less database) and, when reachable or
/// required, PostgreSQL on a schema of its own and NATS JetStream on streams of their own
/// (deleted at the end).
async fn backends() -> Vec<(&'static str, Arc<DynBackend>, Leftover)> {
    let mut backends: Vec<(&'static str, Arc<DynBackend>, Leftover)> = vec![
        (
            "memory",
            Arc::new(InMemoryDatabase::new().keep_history(3)),
            Leftover::Nothing,
        ),
        (
            "sqlite",
            Arc::new(
                SqliteDatabase::open_in_memory()
                    .await
                    .expect("an in-memory SQLite database")
                    .keep_history(3),
            ),
            Leftover::Nothing,
        ),
    ];
    #[cfg(feature = "postgres")]
    if let Some((database, schema)) = postgres().await {
        backends.push((
            "postgres",
            Arc::new(database.keep_history(3)),
            Leftover::Schema(schema),
        ));
    }
    #[cfg(feature = "nats")]
    if let Some(database) = nats().await {
        let database = database.keep_history(3);
        backends.push((
            "nats",
            Arc::new(database.clone()),
            Leftover::Stream(database),
        ));
    }
    backends
}

#[cfg(feature = "nats")]
async fn nats() -> Option<snap_es::nats::NatsDatabase> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let prefix = format!("facade{}", &Uuid::new_v4().simple().to_string()[..16]);
    match snap_es::nats::NatsOptions::new(&url)
        .prefix(prefix)
        .connect()
        .await
    {
        Ok(database) => Some(database),
        Err(error) if std::env::var("SNAP_REQUIRE_NATS").is_ok_and(|v| v == "1") => {
            panic!("NATS at {url} is required: {error}")
        }
        Err(error) => {
            #[allow(clippy::print_stderr, reason = "a skipped backend says so")]
            {
                eprintln!("SKIPPED nats: {error}");
            }
            None
        }
    }
}

#[cfg(feature = "postgres")]
async fn postgres() -> Option<(snap_es::postgres::PostgresDatabase, String)> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("snap_facade_{}", Uuid::new_v4().simple());
    match snap_es::postgres::PostgresOptions::new(&url)
        .schema(&schema)
        .connect()
        .await
    {
        Ok(database) => Some((database, schema)),
        Err(error) if std::env::var("SNAP_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("PostgreSQL at {url} is required: {error}")
        }
        Err(error) => {
            #[allow(clippy::print_stderr, reason = "a skipped backend says so")]
            {
                eprintln!("SKIPPED postgres: {error}");
            }
            None
        }
    }
}

#[cfg(feature = "postgres")]
async fn drop_schema(backend: &Arc<DynBackend>, schema: &str) {
    let _ = backend;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let database = snap_es::postgres::PostgresOptions::new(&url)
        .schema(schema)
        .migrate(false)
        .connect()
        .await
        .expect("reconnect");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(database.pool())
    .await
    .expect("drop the test schema");
    database.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_ids_are_first_class_on_every_backend() {
    for (name, backend, leftover) in backends().await {
        accounts_with_string_ids(name, &backend).await;
        match leftover {
            Leftover::Nothing => {}
            #[cfg(feature = "postgres")]
            Leftover::Schema(schema) => drop_schema(&backend, &schema).await,
            #[cfg(feature = "nats")]
            Leftover::Stream(database) => database.destroy().await.expect("delete the stream"),
        }
    }
}

async fn accounts_with_string_ids(name: &str, backend: &Arc<DynBackend>) {
    let repo = AggregateRepository::<AccountV1>::builder(Arc::clone(backend))
        .strategy(Threshold(3))
        .build()
        .expect(name);
    let replay =
        AggregateRepository::<AccountV1>::builder(StorePair::events_only(backend.event_store()))
            .build()
            .expect(name);
    let named = AggregateId::parse("BankAccount-acc-1 ü").expect(name);
    let uuid = Uuid::new_v4();
    for id in [named.clone(), AggregateId::from(uuid)] {
        let mut root = repo.create_new(&id);
        root.record(AccountEvent::Opened {
            owner: "ada".into(),
        });
        repo.save(&mut root).await.expect(name);
        for amount in 1..=7 {
            root.record(AccountEvent::Deposited { amount });
            repo.save(&mut root).await.expect(name);
        }
    }
    let loaded = repo.load(&named).await.expect(name);
    assert_eq!(loaded.id(), &named, "{name}");
    assert_eq!(loaded.version(), 8, "{name}");
    assert_eq!(
        loaded.state(),
        replay.load(&named).await.expect(name).state(),
        "{name}: a load through a snapshot is the full replay"
    );
    assert!(repo.stats().snapshot_hits > 0, "{name}");
    let stored = backend
        .snapshot_store()
        .expect("snapshots")
        .get_snapshot(&named, AccountV1::TYPE)
        .await
        .expect(name)
        .expect("a snapshot under the string id");
    assert_eq!(
        (&stored.aggregate_id, stored.version),
        (&named, 6),
        "{name}"
    );
    // The text form of a UUID is that UUID: one aggregate, whichever way it is named.
    let by_text = repo.load(AggregateId::parse(&uuid.to_string()).expect(name));
    assert_eq!(by_text.await.expect(name).version(), 8, "{name}");
    let (state, at) = repo.capture_state(&named, 4).await.expect(name);
    assert_eq!((state.deposits, at), (3, 4), "{name}");
    assert!(
        matches!(
            repo.verify_snapshot(&named).await.expect(name),
            SnapshotCheck::Matches { version: 6 }
        ),
        "{name}"
    );

    // The decider repository, on a string id.
    let decider = DeciderRepository::<AccountDecider>::builder(Arc::clone(backend))
        .strategy(Threshold(2))
        .build()
        .expect(name);
    let order = AggregateId::parse("order-123").expect(name);
    decider
        .handle(&order, &AccountCommand::Open("bob".into()))
        .await
        .expect(name);
    let handled = decider
        .handle(&order, &AccountCommand::Deposit(5))
        .await
        .expect(name);
    assert_eq!(handled.version, 2, "{name}");
    assert_eq!(decider.load(&order).await.expect(name).state().0.balance, 5);

    // A rebuild pages through both kinds of id (the decider's accounts share the type).
    let report = repo.rebuild_snapshots(2, |_| ()).await.expect(name);
    assert_eq!((report.aggregates, report.written), (3, 3), "{name}");
}

#[test]
fn bad_ids_are_typed_errors() {
    for (text, expected) in [
        (
            "",
            InvalidInput::Empty {
                field: "aggregate_id",
            },
        ),
        (
            "a\0b",
            InvalidInput::ContainsNul {
                field: "aggregate_id",
            },
        ),
    ] {
        assert_eq!(AggregateId::parse(text), Err(expected));
    }
    assert!(matches!(
        AggregateId::parse(&"x".repeat(256)),
        Err(InvalidInput::TooLong {
            len: 256,
            max: 255,
            ..
        })
    ));
    assert!(AggregateId::try_from("x".repeat(255)).is_ok());
}
