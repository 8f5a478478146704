//! The commands: what each one reads, does and prints.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;

use serde_json::json;
use snap_core::{AggregateId, DynEventStore};
use snap_repo::{Rebuilt, SnapshotCheck};

use crate::Admin;
use crate::args::{Backend, Cli, Command, Job, Target};
use crate::diff::diff;
use crate::jobs::{self, Cursor, Done, Ended, Interrupts, Settings, Task};
use crate::open::{Failure, fail, open, open_for};
use crate::progress::Progress;
use crate::redact::redact_url;
use crate::show::stats_table;

/// Exit status of a job stopped by Ctrl-C.
pub(crate) const INTERRUPTED: u8 = 130;

pub(crate) async fn run(admin: &Admin, cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Schema { backend, json } => schema(backend, json),
        Command::Migrate { target, json } => {
            let database = open(&target, true).await?;
            let shown = redact_url(&target.database_url);
            let version = database.schema_version().await?;
            if json {
                println!(
                    "{}",
                    json!({ "database": shown, "migrated": true, "schema_version": version })
                );
            } else {
                match version {
                    Some(version) => println!("migrated {shown} (schema version {version})"),
                    None => println!("migrated {shown}"),
                }
            }
            Ok(0)
        }
        Command::Stats {
            target,
            aggregate_type,
            limit,
            json,
        } => stats(&target, aggregate_type.as_deref(), limit, json).await,
        Command::Prune {
            target,
            aggregate_type,
            schema_below,
            dry_run,
            json,
        } => prune(&target, &aggregate_type, schema_below, dry_run, json).await,
        Command::Rebuild { target, job } => rebuild(admin, &target, &job).await,
        Command::Verify {
            target,
            job,
            sample,
        } => verify(admin, &target, &job, sample).await,
        Command::Inspect {
            target,
            aggregate_type,
            id,
            json,
        } => crate::inspect::inspect(admin, &target, &aggregate_type, &id, json).await,
        Command::Health {
            target,
            aggregate_type,
            percentile,
            max_lag,
            max_age,
            json,
        } => {
            let bounds = crate::health::Bounds {
                percentile,
                max_lag,
                max_age,
            };
            crate::health::health(&target, aggregate_type.as_deref(), &bounds, json).await
        }
    }
}

/// (version, name, SQL) of each migration `migrate` applies on `backend`, in order.
fn migrations(backend: Backend) -> Result<Vec<(i64, &'static str, &'static str)>, Failure> {
    match backend {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => Ok((1..)
            .zip(snap_sqlite::MIGRATIONS)
            .map(|(version, (name, sql))| (version, *name, *sql))
            .collect()),
        #[cfg(feature = "postgres")]
        Backend::Postgres => Ok(snap_postgres::MIGRATIONS.to_vec()),
        #[allow(
            unreachable_patterns,
            reason = "reached when a backend is not built in"
        )]
        other => Err(fail(format!(
            "this binary was built without the {other:?} backend"
        ))),
    }
}

/// The migrations `migrate` applies, as SQL or as JSON.
fn schema(backend: Backend, json: bool) -> Result<u8, Failure> {
    let migrations = migrations(backend)?;
    if json {
        let shown: Vec<_> = migrations
            .iter()
            .map(|(version, name, sql)| json!({"version": version, "name": name, "sql": sql}))
            .collect();
        println!(
            "{}",
            json!({"backend": format!("{backend:?}").to_lowercase(), "migrations": shown})
        );
    } else {
        for (version, name, sql) in migrations {
            println!("-- {version} {name}\n{sql}");
        }
    }
    Ok(0)
}

async fn stats(
    target: &Target,
    aggregate_type: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<u8, Failure> {
    let database = open(target, false).await?;
    let admin = database.admin();
    let stats = admin.snapshot_stats(aggregate_type).await?;
    let lag = admin.snapshot_lag(aggregate_type, limit).await?;
    if json {
        let lag: Vec<_> = lag
            .iter()
            .map(|l| {
                json!({
                    "aggregate_type": l.aggregate_type,
                    "aggregate_id": l.aggregate_id,
                    "head": l.head,
                    "snapshot_version": l.snapshot_version,
                    "behind": l.behind(),
                })
            })
            .collect();
        println!("{}", json!({ "snapshots": stats, "behind": lag }));
    } else {
        print!("{}", stats_table(&stats, &lag));
    }
    Ok(0)
}

async fn prune(
    target: &Target,
    aggregate_type: &str,
    schema_below: Option<u32>,
    dry_run: bool,
    json: bool,
) -> Result<u8, Failure> {
    let database = open(target, false).await?;
    let count = if dry_run {
        database
            .admin()
            .count_snapshots_by_type(aggregate_type, schema_below)
            .await?
    } else {
        database
            .snapshots()
            .delete_snapshots_by_type(aggregate_type, schema_below)
            .await?
    };
    let bound = schema_below.map_or_else(String::new, |n| format!(" below schema version {n}"));
    if json {
        println!(
            "{}",
            json!({
                "aggregate_type": aggregate_type,
                "schema_below": schema_below,
                "dry_run": dry_run,
                "snapshots": count,
            })
        );
    } else if dry_run {
        println!(
            "would remove {count} snapshots of {aggregate_type}{bound} (dry run: nothing removed)"
        );
    } else {
        println!("removed {count} snapshots of {aggregate_type}{bound}");
    }
    Ok(0)
}

/// `text` as an aggregate id, or the line saying why it is none.
pub(crate) fn parse_id(text: &str) -> Result<AggregateId, Failure> {
    AggregateId::parse(text).map_err(|e| fail(format!("bad aggregate id {text:?}: {e}")))
}

/// The ids a job works on, in order, and the id it resumes after.
async fn plan(
    events: &DynEventStore,
    job: &Job,
    cursor: Option<&Cursor>,
) -> Result<(Vec<AggregateId>, Option<AggregateId>), Failure> {
    let ty = job.aggregate_type.as_str();
    if !job.ids.is_empty() {
        let mut ids = Vec::with_capacity(job.ids.len());
        for text in &job.ids {
            let id = parse_id(text)?;
            if events.current_version(&id, ty).await? == 0 {
                return Err(fail(format!("no events for aggregate {id} of type {ty}")));
            }
            ids.push(id);
        }
        ids.sort();
        ids.dedup();
        return Ok((ids, None));
    }
    let after = match (&job.after, cursor) {
        (Some(text), _) => Some(parse_id(text)?),
        (None, Some(cursor)) => cursor.read()?,
        (None, None) => None,
    };
    let ids = jobs::list_ids(events, ty, after.clone()).await?;
    Ok((ids, after))
}

/// `count` of `ids` at random, in order.
fn sample(ids: Vec<AggregateId>, count: usize) -> Vec<AggregateId> {
    let random = RandomState::new();
    let mut keyed: Vec<(u64, AggregateId)> = ids
        .into_iter()
        .map(|id| (random.hash_one(id.to_string()), id))
        .collect();
    keyed.sort_unstable_by_key(|(key, _)| *key);
    let mut chosen: Vec<AggregateId> = keyed.into_iter().take(count).map(|(_, id)| id).collect();
    chosen.sort();
    chosen
}

/// What every job reports, in its JSON.
fn ended_json(
    command: &str,
    ty: &str,
    ended: &Ended,
    resumed: Option<&AggregateId>,
) -> serde_json::Value {
    json!({
        "command": command,
        "aggregate_type": ty,
        "resumed_after": resumed,
        "total": ended.total,
        "done": ended.done,
        "elapsed_ms": ended.elapsed.as_millis(),
        "complete": ended.complete(),
        "interrupted": ended.interrupted,
        "abandoned": ended.abandoned,
        "done_through": ended.done_through,
        "error": ended.error.as_ref().map(|(id, message)| json!({
            "aggregate_id": id,
            "message": message,
        })),
    })
}

/// The first sentence of a job's report.
fn ended_line(command: &str, ty: &str, ended: &Ended, resumed: Option<&AggregateId>) -> String {
    let seconds = ended.elapsed.as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "a rate to show")]
    let rate = if seconds > 0.0 {
        ended.done as f64 / seconds
    } else {
        0.0
    };
    let resumed = resumed.map_or_else(String::new, |id| format!(" (resumed after {id})"));
    format!(
        "{command} {ty}: {} of {} aggregates in {seconds:.1} s ({rate:.0}/s){resumed}",
        ended.done, ended.total
    )
}

/// How to go on from where a job stopped, and its exit status; or the failure that stopped it.
fn stopped(ended: &Ended, job: &Job, json: bool, status: u8) -> Result<u8, Failure> {
    if ended.complete() {
        // A Ctrl-C after the last aggregate changes nothing.
        return Ok(status);
    }
    let resume = match (&job.cursor, &ended.done_through) {
        (Some(path), _) => format!("run again with --cursor {}", path.display()),
        (None, Some(id)) if !job.ids.is_empty() => {
            format!("run again with the --id values after {id}")
        }
        (None, Some(id)) => format!("run again with --after {:?}", id.to_string()),
        (None, None) => "run again".to_owned(),
    };
    let abandoned = if ended.abandoned > 0 {
        format!(
            "; stopped at once by a second Ctrl-C, leaving {} under way (a new run does them again)",
            ended.abandoned
        )
    } else {
        String::new()
    };
    if let Some((id, message)) = &ended.error {
        let at = id
            .as_ref()
            .map_or_else(String::new, |id| format!(" at aggregate {id}"));
        return Err(fail(format!("stopped{at}: {message}; to go on, {resume}")));
    }
    if ended.interrupted {
        if !json {
            println!("interrupted by Ctrl-C{abandoned}: to go on, {resume}");
        }
        return Ok(INTERRUPTED);
    }
    Ok(status)
}

/// Runs `task` as a job over the aggregates `job` names (a sample of `sample_size` of them,
/// when given): the registered type, the open database, the ids, progress and Ctrl-C. Each
/// result goes to `on_done`; returns how the job ended and the id it resumed after.
async fn run_job(
    admin: &Admin,
    target: &Target,
    job: &Job,
    task: Task,
    sample_size: Option<usize>,
    on_done: impl FnMut(&AggregateId, Done),
) -> Result<(Ended, Option<AggregateId>), Failure> {
    // From here a Ctrl-C stops the job cleanly (while the ids are listed, before any work).
    let interrupts = Interrupts::listen();
    let ty = job.aggregate_type.as_str();
    let kind = admin.kind(ty)?;
    let database = open_for(target, false, u32::from(job.concurrency)).await?;
    let backend = database.backend();
    let checks = kind.open(backend.clone())?;
    let cursor = job.cursor.as_deref().map(|path| Cursor::new(path, ty));
    let (mut ids, resumed) = plan(&*backend.event_store(), job, cursor.as_ref()).await?;
    if let Some(count) = sample_size {
        ids = sample(ids, count);
    }
    let mut progress = Progress::new(
        format!("{} {ty}", task.command()),
        ids.len() as u64,
        job.json,
    );
    let settings = Settings {
        concurrency: usize::from(job.concurrency),
        max_rate: job.max_rate,
        cursor,
    };
    let ended = jobs::run(
        checks,
        task,
        ids,
        &settings,
        &mut progress,
        interrupts.count.clone(),
        on_done,
    )
    .await?;
    Ok((ended, resumed))
}

async fn rebuild(admin: &Admin, target: &Target, job: &Job) -> Result<u8, Failure> {
    let ty = job.aggregate_type.as_str();
    let (mut written, mut no_events, mut discarded) = (0u64, 0u64, 0u64);
    let (ended, resumed) = run_job(
        admin,
        target,
        job,
        Task::Rebuild,
        None,
        |_, done| match done {
            Done::Rebuilt(Rebuilt::Written { .. }) => written += 1,
            Done::Rebuilt(Rebuilt::NoEvents) => no_events += 1,
            _ => discarded += 1,
        },
    )
    .await?;
    if job.json {
        let mut report = ended_json("rebuild", ty, &ended, resumed.as_ref());
        report["written"] = json!(written);
        report["no_events"] = json!(no_events);
        report["discarded"] = json!(discarded);
        println!("{report}");
    } else {
        println!(
            "{}: {written} snapshots written, {no_events} without events, {discarded} discarded",
            ended_line("rebuild", ty, &ended, resumed.as_ref())
        );
    }
    stopped(&ended, job, job.json, 0)
}

async fn verify(
    admin: &Admin,
    target: &Target,
    job: &Job,
    sample_size: Option<usize>,
) -> Result<u8, Failure> {
    let ty = job.aggregate_type.as_str();
    let (mut matches, mut no_snapshot) = (0u64, 0u64);
    let mut unusable = Vec::new();
    let mut differ = Vec::new();
    let on_done = |id: &AggregateId, done| match done {
        Done::Checked(SnapshotCheck::Matches { .. }) => matches += 1,
        Done::Checked(SnapshotCheck::Mismatch {
            version,
            snapshot,
            replayed,
        }) => differ.push((id.clone(), version, diff(&snapshot, &replayed))),
        Done::Checked(SnapshotCheck::Unusable { reason }) => {
            unusable.push((id.clone(), reason.as_str()));
        }
        _ => no_snapshot += 1,
    };
    let (ended, resumed) = run_job(admin, target, job, Task::Verify, sample_size, on_done).await?;
    differ.sort_by(|a, b| a.0.cmp(&b.0));
    unusable.sort();
    if job.json {
        let mut report = ended_json("verify", ty, &ended, resumed.as_ref());
        report["matches"] = json!(matches);
        report["no_snapshot"] = json!(no_snapshot);
        report["unusable"] = unusable
            .iter()
            .map(|(id, reason)| json!({"aggregate_id": id, "reason": reason}))
            .collect();
        report["differ"] = differ
            .iter()
            .map(|(id, version, found)| {
                json!({"aggregate_id": id, "version": version, "differences": found})
            })
            .collect();
        println!("{report}");
    } else {
        println!(
            "{}: {matches} match, {} differ, {no_snapshot} without a snapshot, {} unusable",
            ended_line("verify", ty, &ended, resumed.as_ref()),
            differ.len(),
            unusable.len()
        );
        for (id, version, found) in &differ {
            println!("differs: {id} (snapshot at version {version})");
            for difference in found {
                println!("  {difference}");
            }
        }
        for (id, reason) in &unusable {
            println!("unusable: {id} ({reason}; loads replay in full)");
        }
    }
    stopped(&ended, job, job.json, u8::from(!differ.is_empty()))
}
