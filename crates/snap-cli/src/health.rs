//! `health`: per aggregate type, how many events loads replay after the latest snapshot and
//! how old the snapshots are, as percentiles, against thresholds that set the exit status.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use snap_core::SnapshotLag;

use crate::args::Target;
use crate::open::{Failure, fail, open};
use crate::show::{span, table};

/// The thresholds of `health`.
#[derive(Debug)]
pub(crate) struct Bounds {
    pub(crate) percentile: u8,
    pub(crate) max_lag: Option<u64>,
    pub(crate) max_age: Option<Duration>,
}

/// Percentiles of a set of numbers.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub(crate) struct Spread {
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
    /// The percentile the thresholds apply to.
    at_percentile: u64,
}

/// The nearest-rank `percentile` of `sorted` (not empty).
fn rank(sorted: &[u64], percentile: u8) -> u64 {
    let n = sorted.len();
    let at = (n * usize::from(percentile)).div_ceil(100).clamp(1, n);
    sorted[at - 1]
}

fn spread(mut values: Vec<u64>, percentile: u8) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(Spread {
        p50: rank(&values, 50),
        p90: rank(&values, 90),
        p99: rank(&values, 99),
        max: rank(&values, 100),
        at_percentile: rank(&values, percentile),
    })
}

/// One type's health.
#[derive(Debug, Serialize)]
struct TypeHealth {
    aggregate_type: String,
    aggregates: usize,
    snapshotted: usize,
    lag: Option<Spread>,
    age_seconds: Option<Spread>,
    /// The measures over their threshold: "lag", "age".
    over: Vec<&'static str>,
}

fn assess(lag: Vec<SnapshotLag>, bounds: &Bounds, now: time::OffsetDateTime) -> Vec<TypeHealth> {
    let mut by_type: BTreeMap<String, Vec<SnapshotLag>> = BTreeMap::new();
    for entry in lag {
        by_type
            .entry(entry.aggregate_type.clone())
            .or_default()
            .push(entry);
    }
    by_type
        .into_iter()
        .map(|(aggregate_type, entries)| {
            let ages: Vec<u64> = entries
                .iter()
                .filter_map(|e| e.snapshot_updated_at)
                .map(|at| u64::try_from((now - at).whole_seconds()).unwrap_or(0))
                .collect();
            let snapshotted = ages.len();
            let lag = spread(
                entries.iter().map(SnapshotLag::behind).collect(),
                bounds.percentile,
            );
            let age_seconds = spread(ages, bounds.percentile);
            let mut over = Vec::new();
            if let (Some(max), Some(lag)) = (bounds.max_lag, lag)
                && lag.at_percentile > max
            {
                over.push("lag");
            }
            if let (Some(max), Some(age)) = (bounds.max_age, age_seconds)
                && age.at_percentile > max.as_secs()
            {
                over.push("age");
            }
            TypeHealth {
                aggregate_type,
                aggregates: entries.len(),
                snapshotted,
                lag,
                age_seconds,
                over,
            }
        })
        .collect()
}

pub(crate) async fn health(
    target: &Target,
    aggregate_type: Option<&str>,
    bounds: &Bounds,
    json: bool,
) -> Result<u8, Failure> {
    let database = open(target, false).await?;
    let lag = database
        .admin()
        .snapshot_lag(aggregate_type, usize::MAX)
        .await?;
    if let Some(ty) = aggregate_type
        && lag.is_empty()
    {
        // A monitoring job with a misspelt type must not pass.
        return Err(fail(format!("no aggregates of type {ty:?}")));
    }
    let types = assess(lag, bounds, time::OffsetDateTime::now_utc());
    let healthy = types.iter().all(|t| t.over.is_empty());
    if json {
        println!(
            "{}",
            json!({
                "percentile": bounds.percentile,
                "max_lag": bounds.max_lag,
                "max_age_seconds": bounds.max_age.map(|d| d.as_secs()),
                "healthy": healthy,
                "types": types,
            })
        );
    } else {
        print!("{}", health_table(&types, bounds.percentile));
        let verdict = if healthy { "healthy" } else { "UNHEALTHY" };
        let mut limits = Vec::new();
        if let Some(max) = bounds.max_lag {
            limits.push(format!("lag p{} <= {max}", bounds.percentile));
        }
        if let Some(max) = bounds.max_age {
            limits.push(format!(
                "age p{} <= {}",
                bounds.percentile,
                span(max.as_secs())
            ));
        }
        if limits.is_empty() {
            println!("{verdict} (no thresholds given: --max-lag, --max-age)");
        } else {
            println!("{verdict} ({})", limits.join(", "));
        }
    }
    Ok(u8::from(!healthy))
}

fn health_table(types: &[TypeHealth], percentile: u8) -> String {
    if types.is_empty() {
        return "(no events)\n".to_owned();
    }
    let cells = |s: Option<Spread>, show: fn(u64) -> String| match s {
        Some(s) => [s.p50, s.p90, s.p99, s.max, s.at_percentile]
            .map(show)
            .to_vec(),
        None => vec!["-".to_owned(); 5],
    };
    let rows = types
        .iter()
        .map(|t| {
            let mut row = vec![
                t.aggregate_type.clone(),
                t.aggregates.to_string(),
                t.snapshotted.to_string(),
            ];
            let lag = cells(t.lag, |n| n.to_string());
            let age = cells(t.age_seconds, span);
            row.extend(lag[..4].iter().cloned());
            row.extend(age[..4].iter().cloned());
            row.push(if t.over.is_empty() {
                "ok".to_owned()
            } else {
                format!("over: {} (p{percentile})", t.over.join(", "))
            });
            row
        })
        .collect();
    let header = [
        "type",
        "aggregates",
        "snapshotted",
        "lag p50",
        "p90",
        "p99",
        "max",
        "age p50",
        "p90",
        "p99",
        "max",
        "status",
    ];
    format!(
        "{}\n",
        table(&header, rows, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    )
}

#[cfg(test)]
mod tests {
    use super::{Bounds, assess, rank};
    use snap_core::{AggregateId, SnapshotLag};
    use std::time::Duration;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(rank(&values, 50), 50);
        assert_eq!(rank(&values, 99), 99);
        assert_eq!(rank(&values, 100), 100);
        assert_eq!(rank(&[7], 1), 7);
        assert_eq!(rank(&[1, 2, 3], 50), 2);
    }

    #[test]
    fn a_type_over_a_threshold_is_unhealthy() {
        let now = time::OffsetDateTime::now_utc();
        let entry = |ty: &str, n: u32, head, snap, age: Option<i64>| {
            SnapshotLag::new(
                ty.to_owned(),
                AggregateId::parse(&format!("a{n}")).expect("an id"),
                head,
                snap,
            )
            .with_updated_at(age.map(|s| now - time::Duration::seconds(s)))
        };
        let lag = vec![
            entry("A", 1, 10, 10, Some(30)),
            entry("A", 2, 50, 0, None),
            entry("B", 1, 3, 2, Some(7_200)),
        ];
        let bounds = Bounds {
            percentile: 99,
            max_lag: Some(40),
            max_age: Some(Duration::from_hours(1)),
        };
        let types = assess(lag, &bounds, now);
        assert_eq!(types.len(), 2);
        assert_eq!((types[0].aggregates, types[0].snapshotted), (2, 1));
        assert_eq!(types[0].over, ["lag"]);
        assert_eq!(types[1].over, ["age"]);
        assert_eq!(types[1].age_seconds.map(|s| s.max), Some(7_200));
    }
}
