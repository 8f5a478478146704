//! The operator's questions ([`SnapshotAdmin`]) on JetStream: each is one pass over the
//! snapshots stream (which holds only current snapshots) and, for the lag, one over the last
//! save of each aggregate's subject.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use async_nats::jetstream::consumer::DeliverPolicy;
use snap_core::{
    AggregateId, BackendError, EventStoreError, Snapshot, SnapshotAdmin, SnapshotLag,
    SnapshotTypeStats, async_trait, validate,
};
use time::OffsetDateTime;

use crate::wire::range_of;
use crate::{NatsDatabase, read, token};

fn admin_error(error: EventStoreError) -> BackendError {
    match error {
        EventStoreError::Backend(error) => error,
        other => BackendError::new("nats", other),
    }
}

fn check_type(aggregate_type: Option<&str>) -> Result<(), BackendError> {
    validate::admin_type("nats", aggregate_type)
}

/// The state's size as JSON text, as the SQL backends measure it.
fn state_bytes(snapshot: &Snapshot) -> u64 {
    serde_json::to_string(&snapshot.state).map_or(0, |text| text.len() as u64)
}

impl NatsDatabase {
    /// Hands every readable snapshot, of one type or of all, to `each`: the latest ones only,
    /// or the retained history too. Unreadable messages are left out.
    async fn each_snapshot(
        &self,
        aggregate_type: Option<&str>,
        with_history: bool,
        each: &mut (dyn FnMut(Snapshot) + Send),
    ) -> Result<(), BackendError> {
        let root = &self.inner.names.snapshot_subjects;
        let filters = match (aggregate_type.map(token::encode), with_history) {
            (Some(ty), true) => vec![format!("{root}.l.{ty}.*"), format!("{root}.h.{ty}.*.*")],
            (Some(ty), false) => vec![format!("{root}.l.{ty}.*")],
            (None, true) => vec![format!("{root}.>")],
            (None, false) => vec![format!("{root}.l.>")],
        };
        for filter in filters {
            let mut pass = |message: &async_nats::Message| {
                if let Ok(snapshot) = serde_json::from_slice::<Snapshot>(&message.payload) {
                    each(snapshot);
                }
                Ok(ControlFlow::Continue(()))
            };
            let stream = &self.inner.snapshots;
            read::messages(self, stream, (&filter, DeliverPolicy::All), &mut pass)
                .await
                .map_err(admin_error)?;
        }
        Ok(())
    }
}

#[async_trait]
impl SnapshotAdmin for NatsDatabase {
    async fn snapshot_stats(
        &self,
        aggregate_type: Option<&str>,
    ) -> Result<Vec<SnapshotTypeStats>, BackendError> {
        check_type(aggregate_type)?;
        // (type, schema) -> (count, total, largest, oldest, newest)
        let mut groups: BTreeMap<(String, u32), (u64, u64, u64, OffsetDateTime, OffsetDateTime)> =
            BTreeMap::new();
        self.each_snapshot(aggregate_type, true, &mut |snapshot| {
            let bytes = state_bytes(&snapshot);
            let at = snapshot.updated_at;
            let key = (snapshot.aggregate_type, snapshot.schema_version);
            let group = groups.entry(key).or_insert((0, 0, 0, at, at));
            group.0 += 1;
            group.1 += bytes;
            group.2 = group.2.max(bytes);
            group.3 = group.3.min(at);
            group.4 = group.4.max(at);
        })
        .await?;
        Ok(groups
            .into_iter()
            .map(|((ty, schema), (n, total, largest, oldest, newest))| {
                SnapshotTypeStats::new(ty, schema, n, total, largest, oldest, newest)
            })
            .collect())
    }

    async fn snapshot_lag(
        &self,
        aggregate_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SnapshotLag>, BackendError> {
        check_type(aggregate_type)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut snapshots: HashMap<(String, AggregateId), (u64, OffsetDateTime)> = HashMap::new();
        self.each_snapshot(aggregate_type, false, &mut |snapshot| {
            snapshots.insert(
                (snapshot.aggregate_type, snapshot.aggregate_id),
                (snapshot.version, snapshot.updated_at),
            );
        })
        .await?;
        let names = &self.inner.names;
        let filter = match aggregate_type {
            Some(ty) => names.type_subjects(ty),
            None => format!("{}.*.*", names.subjects),
        };
        let mut lag = Vec::new();
        let mut each = |message: &async_nats::Message| {
            let stream = (|| {
                let mut tokens = message.subject.as_str().rsplit('.');
                let id = token::decode(tokens.next()?)?;
                let ty = token::decode(tokens.next()?)?;
                Some((ty, id))
            })();
            let Some((ty, id)) = stream else {
                return Err(EventStoreError::from(BackendError::new(
                    "nats",
                    format!("a subject that names no stream: {:?}", message.subject),
                )));
            };
            let id = AggregateId::parse_stored("nats", id)?;
            let (_, head) = range_of(message.headers.as_ref())
                .map_err(|e| EventStoreError::from(BackendError::new("nats", e)))?;
            let snapshot = snapshots.get(&(ty.clone(), id.clone())).copied();
            let (version, updated_at) = snapshot.map_or((0, None), |(v, at)| (v, Some(at)));
            lag.push(SnapshotLag::new(ty, id, head, version).with_updated_at(updated_at));
            Ok(ControlFlow::Continue(()))
        };
        let deliver = (filter.as_str(), DeliverPolicy::LastPerSubject);
        read::messages(self, &self.inner.events, deliver, &mut each)
            .await
            .map_err(admin_error)?;
        lag.sort_by(|a, b| {
            b.behind()
                .cmp(&a.behind())
                .then_with(|| a.aggregate_type.cmp(&b.aggregate_type))
                .then_with(|| a.aggregate_id.cmp(&b.aggregate_id))
        });
        lag.truncate(limit);
        Ok(lag)
    }

    async fn count_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, BackendError> {
        check_type(Some(aggregate_type))?;
        let mut count = 0;
        self.each_snapshot(Some(aggregate_type), true, &mut |snapshot| {
            if schema_version_below.is_none_or(|below| snapshot.schema_version < below) {
                count += 1;
            }
        })
        .await?;
        Ok(count)
    }
}
