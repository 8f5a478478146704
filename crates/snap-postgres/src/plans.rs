//! The read statements' plans stay bounded by the primary key whatever the statistics say.
//!
//! Each statement is prepared with `plan_cache_mode = force_generic_plan` and first run on
//! empty tables, so PostgreSQL caches the plan it picks for a tiny table, as a pooled connection
//! does when it served the stream's first writes. Then 20,000 events go into one stream and
//! 300 streams of 3 events are added, without `ANALYZE`, and `EXPLAIN ANALYZE` of the cached
//! plan shows how many rows each node produced: a bounded plan never touches more rows than
//! its answer needs (a `MAX(version)` over the stream read all 20,000).

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::PostgresDatabase;

fn url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A connection and a fresh migrated schema, or `None` (printed) when no server answers and
/// none is required.
async fn fresh() -> Option<(PgConnection, PostgresDatabase)> {
    let required = std::env::var("SNAP_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let connection = match PgConnection::connect(&url()).await {
        Ok(c) => c,
        Err(e) if !required => {
            #[allow(clippy::print_stderr, reason = "a skipped test says so loudly")]
            {
                eprintln!("SKIPPED: no PostgreSQL server: {e}");
            }
            return None;
        }
        Err(e) => panic!("SNAP_REQUIRE_POSTGRES=1 but the server is unreachable: {e}"),
    };
    let schema = format!("snap_plans_{}", Uuid::new_v4().simple());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url())
        .await
        .expect("a pool");
    let database = PostgresDatabase::with_schema(pool, &schema).expect("schema name");
    database.migrate().await.expect("migrate");
    Some((connection, database))
}

/// The most rows any node of the plan produced in one loop.
fn widest(plan: &[String]) -> u64 {
    plan.iter()
        .filter_map(|line| {
            let rows = line.split("actual rows=").nth(1)?;
            rows.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

async fn explain(connection: &mut PgConnection, execute: &str) -> Vec<String> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {execute}"
    )))
    .fetch_all(connection)
    .await
    .expect("explain")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_read_plans_stay_bounded_after_a_stream_grows() {
    let Some((mut c, database)) = fresh().await else {
        return;
    };
    let s = format!("\"{}\"", database.schema());
    let sql = database.sql();
    let big = Uuid::new_v4();
    let statements: [(&str, &str, String, u64); 6] = [
        // (name, parameter types, arguments, most rows a bounded plan produces)
        ("head", "text, text", format!("'Account', '{big}'"), 1),
        (
            "page",
            "text, text, bigint, bigint, bigint",
            format!("'Account', '{big}', 19000, 20000, 256"),
            256,
        ),
        ("ids_first", "text, bigint", "'Account', 10".to_owned(), 10),
        (
            "ids_after",
            "text, bigint, text",
            format!("'Account', 10, '{big}'"),
            10,
        ),
        ("lag", "bigint, text", "5, 'Account'".to_owned(), 301),
        ("lag_all", "bigint", "5".to_owned(), 301),
    ];
    let texts = [
        sql.events.current_version.as_str().to_owned(),
        sql.events.load_page.as_str().to_owned(),
        sql.events.list_ids_first.as_str().to_owned(),
        sql.events.list_ids_after.as_str().to_owned(),
        crate::ops::lag_sql(database.schema(), true),
        crate::ops::lag_sql(database.schema(), false),
    ];
    c.execute("SET plan_cache_mode = force_generic_plan")
        .await
        .expect("generic plans");
    for ((name, types, args, _), text) in statements.iter().zip(&texts) {
        c.execute(AssertSqlSafe(format!("PREPARE {name} ({types}) AS {text}")))
            .await
            .expect("prepare");
        explain(&mut c, &format!("EXECUTE {name}({args})")).await;
    }
    c.execute(AssertSqlSafe(format!(
        "INSERT INTO {s}.events (aggregate_type, aggregate_id, version, event_id, event_type, payload, metadata)
         SELECT 'Account', '{big}', g, gen_random_uuid(), 'Deposited', '{{}}', 'null'
         FROM generate_series(1, 20000) g;
         INSERT INTO {s}.events (aggregate_type, aggregate_id, version, event_id, event_type, payload, metadata)
         SELECT 'Account', id, v, gen_random_uuid(), 'Deposited', '{{}}', 'null'
         FROM (SELECT gen_random_uuid()::text AS id FROM generate_series(1, 300)) ids,
              generate_series(1, 3) v"
    )))
    .await
    .expect("fill the events");
    for (name, _, args, bound) in &statements {
        let plan = explain(&mut c, &format!("EXECUTE {name}({args})")).await;
        assert!(
            widest(&plan) <= *bound,
            "{name}: a node produced {} rows (at most {bound} expected):\n{}",
            widest(&plan),
            plan.join("\n")
        );
    }
    c.execute(AssertSqlSafe(format!("DROP SCHEMA {s} CASCADE")))
        .await
        .expect("drop the schema");
}
