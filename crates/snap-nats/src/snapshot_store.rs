//! Snapshots in a JetStream stream that keeps the last message of each subject: the latest
//! per aggregate under one key, and the older retained versions under keys of their own.

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use bytes::Bytes;
use futures_util::StreamExt;
use snap_core::{
    AggregateId, BoxError, Snapshot, SnapshotError, SnapshotStore, async_trait,
    normalize_timestamp, validate,
};

use crate::wire::{self, EVENT_SEQUENCE, header_u64};
use crate::{NatsDatabase, token};

/// How many times a save tries again after losing a compare-and-set to another writer.
const CAS_ATTEMPTS: usize = 1_000;

/// A [`SnapshotStore`] on a NATS JetStream stream that keeps one message per subject.
///
/// The latest snapshot of an aggregate is the message of `<prefix>.snapshots.l.<type>.<id>`;
/// a save replaces it only if the subject's last sequence is still the one it read (the
/// server checks), so concurrent savers never move it back. With
/// [`keep_history`](NatsDatabase::keep_history), the versions it replaces are kept under
/// `h.<type>.<id>.<version>` (the history is a cache of older states: a crash between the two
/// writes can leave one version more or fewer, never a wrong one). Clones share the
/// connection.
#[derive(Debug, Clone)]
pub struct NatsSnapshotStore {
    database: NatsDatabase,
}

fn nats_error(error: impl Into<BoxError>, context: &'static str) -> SnapshotError {
    SnapshotError::from(crate::error::backend(error, context))
}

/// A snapshot message as read.
struct Entry {
    value: Bytes,
    /// The message's sequence in the snapshots stream.
    sequence: u64,
    /// The events stream's sequence of the save that holds the snapshot's version.
    events_at: Option<u64>,
}

fn latest_key(aggregate_type: &str, id: &AggregateId) -> String {
    format!("l.{}.{}", token::encode(aggregate_type), token::id(id))
}

fn history_prefix(aggregate_type: &str, id: &AggregateId) -> String {
    format!("h.{}.{}", token::encode(aggregate_type), token::id(id))
}

fn history_key(aggregate_type: &str, id: &AggregateId, version: u64) -> String {
    format!("{}.{version:020}", history_prefix(aggregate_type, id))
}

impl NatsSnapshotStore {
    pub(crate) fn new(database: NatsDatabase) -> Self {
        Self { database }
    }

    /// The database this store writes to.
    pub fn database(&self) -> &NatsDatabase {
        &self.database
    }

    fn stream(&self) -> &Stream {
        &self.database.inner.snapshots
    }

    fn subject(&self, key: &str) -> String {
        format!("{}.{key}", self.database.inner.names.snapshot_subjects)
    }

    /// The message of `key`, if it holds one.
    async fn entry(&self, key: &str) -> Result<Option<Entry>, SnapshotError> {
        match self
            .stream()
            .get_last_raw_message_by_subject(self.subject(key).as_str())
            .await
        {
            Ok(message) => Ok(Some(Entry {
                events_at: header_u64(Some(&message.headers), EVENT_SEQUENCE).ok(),
                value: message.payload,
                sequence: message.sequence,
            })),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(nats_error(e, "get_snapshot")),
        }
    }

    /// The snapshot under `key` and its message, if there is one.
    async fn read(
        &self,
        key: &str,
        id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<Option<(Snapshot, Entry)>, SnapshotError> {
        match self.entry(key).await? {
            Some(entry) => Ok(Some((decode(&entry.value, id, aggregate_type)?, entry))),
            None => Ok(None),
        }
    }

    /// The latest snapshot at or below `up_to` (`None`: the latest), with the events stream's
    /// sequence of the save that holds its version, when known.
    pub(crate) async fn find(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        up_to: Option<u64>,
    ) -> Result<Option<(Snapshot, Option<u64>)>, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let key = latest_key(aggregate_type, aggregate_id);
        let latest = self.read(&key, aggregate_id, aggregate_type).await?;
        let max_version = match (latest, up_to) {
            (None, None) => return Ok(None),
            (Some((latest, entry)), up_to) if up_to.is_none_or(|v| latest.version <= v) => {
                let seen = (latest.version, entry.sequence, latest.created_at);
                self.database.inner.latest.note(&key, seen);
                return Ok(Some((latest, entry.events_at)));
            }
            (_, up_to) => up_to.unwrap_or(u64::MAX),
        };
        for (version, key) in self
            .history(aggregate_type, aggregate_id)
            .await?
            .iter()
            .rev()
        {
            if *version <= max_version
                && let Some((snapshot, entry)) =
                    self.read(key, aggregate_id, aggregate_type).await?
            {
                return Ok(Some((snapshot, entry.events_at)));
            }
        }
        Ok(None)
    }

    /// Publishes `value` under `key`; with `expected`, only if the key's last sequence is
    /// still that (0: the key holds nothing). `Ok(Some(sequence))`: stored at `sequence`;
    /// `Ok(None)`: another writer got there first.
    async fn publish(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<u64>,
        events_at: Option<u64>,
    ) -> Result<Option<u64>, SnapshotError> {
        wire::fits("state", value.len(), self.database.max_payload())?;
        let mut message = PublishMessage::build().payload(Bytes::from(value));
        if let Some(sequence) = expected {
            message = message.expected_last_subject_sequence(sequence);
        }
        if let Some(sequence) = events_at {
            message = message.header(EVENT_SEQUENCE, sequence.to_string().as_str());
        }
        let sent = self
            .database
            .inner
            .context
            .send_publish(self.subject(key), message)
            .await;
        match sent {
            Ok(ack) => match ack.await {
                Ok(ack) => Ok(Some(ack.sequence)),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
                Err(e) => Err(nats_error(e, "save_snapshot")),
            },
            Err(e) => Err(nats_error(e, "save_snapshot")),
        }
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        events_at: Option<u64>,
    ) -> Result<(), SnapshotError> {
        self.publish(key, value, None, events_at).await.map(|_| ())
    }

    async fn purge(&self, key: &str) -> Result<(), SnapshotError> {
        self.stream()
            .purge()
            .filter(self.subject(key))
            .await
            .map(|_| ())
            .map_err(|e| nats_error(e, "delete_snapshot"))
    }

    /// The keys under `prefix` that hold a snapshot, sorted.
    async fn keys_under(&self, prefix: &str) -> Result<Vec<String>, SnapshotError> {
        let filter = self.subject(&format!("{prefix}.>"));
        let mut listed = self
            .stream()
            .info_with_subjects(&filter)
            .await
            .map_err(|e| nats_error(e, "list snapshot keys"))?;
        let skip = self.subject("").len();
        let mut keys = Vec::new();
        while let Some(entry) = listed.next().await {
            let (subject, count) = entry.map_err(|e| nats_error(e, "list snapshot keys"))?;
            if count > 0
                && let Some(key) = subject.get(skip..)
            {
                keys.push(key.to_owned());
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    /// The retained older versions of one aggregate, lowest first, as (version, key).
    async fn history(
        &self,
        aggregate_type: &str,
        id: &AggregateId,
    ) -> Result<Vec<(u64, String)>, SnapshotError> {
        let prefix = history_prefix(aggregate_type, id);
        let mut versions = Vec::new();
        for key in self.keys_under(&prefix).await? {
            let version = key
                .rsplit('.')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| nats_error(format!("key {key:?}"), "read a history key"))?;
            versions.push((version, key));
        }
        versions.sort_unstable();
        Ok(versions)
    }

    /// Saves `snapshot` (validated) unless a higher version is stored, noting `events_at`, the
    /// events stream's sequence of the save that holds its version.
    pub(crate) async fn save(
        &self,
        snapshot: &Snapshot,
        events_at: Option<u64>,
    ) -> Result<(), SnapshotError> {
        let (id, aggregate_type) = (&snapshot.aggregate_id, snapshot.aggregate_type.as_str());
        let key = latest_key(aggregate_type, id);
        let mut new = snapshot.clone();
        new.created_at = normalize_timestamp(new.created_at);
        new.updated_at = normalize_timestamp(new.updated_at);
        let latest = &self.database.inner.latest;
        // Replacing the latest snapshot this handle last saw: no read first. The server checks
        // the sequence; if another write came between, the loop below reads and decides.
        if let Some((version, sequence, created_at)) = latest.get(&key)
            && self.database.keep == 1
            && new.version > version
        {
            let mut guessed = new.clone();
            guessed.created_at = created_at;
            let value = serde_json::to_vec(&guessed).map_err(|e| nats_error(e, "save_snapshot"))?;
            if let Some(stored) = self.publish(&key, value, Some(sequence), events_at).await? {
                latest.note(&key, (guessed.version, stored, created_at));
                return Ok(());
            }
            latest.forget(&key);
        }
        for _ in 0..CAS_ATTEMPTS {
            let current = self.read(&key, id, aggregate_type).await;
            let sequence = match current {
                Ok(Some((stored, _))) if stored.version > new.version => return Ok(()),
                Ok(Some((stored, entry))) => {
                    new.created_at = stored.created_at;
                    if self.database.keep > 1 && stored.version < new.version {
                        let value = serde_json::to_vec(&stored)
                            .map_err(|e| nats_error(e, "save_snapshot"))?;
                        let key = history_key(aggregate_type, id, stored.version);
                        self.put(&key, value, entry.events_at).await?;
                    }
                    entry.sequence
                }
                Ok(None) => 0,
                // An unreadable latest snapshot is replaced.
                Err(SnapshotError::Deserialization { .. }) => {
                    self.entry(&key).await?.map_or(0, |entry| entry.sequence)
                }
                Err(error) => return Err(error),
            };
            let value = serde_json::to_vec(&new).map_err(|e| nats_error(e, "save_snapshot"))?;
            // Another writer got there first: read again.
            if let Some(stored) = self.publish(&key, value, Some(sequence), events_at).await? {
                latest.note(&key, (new.version, stored, new.created_at));
                if self.database.keep > 1 {
                    self.trim(aggregate_type, id, new.version).await?;
                }
                return Ok(());
            }
        }
        Err(nats_error(
            "too many concurrent writers to one aggregate",
            "save_snapshot",
        ))
    }

    /// Keeps the `keep - 1` highest history versions below `latest`, and none at or above it.
    async fn trim(
        &self,
        aggregate_type: &str,
        id: &AggregateId,
        latest: u64,
    ) -> Result<(), SnapshotError> {
        let keep = self.database.keep.saturating_sub(1);
        let history = self.history(aggregate_type, id).await?;
        let below: Vec<&(u64, String)> = history.iter().filter(|(v, _)| *v < latest).collect();
        let excess = below.len().saturating_sub(keep);
        for (version, key) in &history {
            let drop_it =
                *version >= latest || below.iter().take(excess).any(|(v, _)| v == version);
            if drop_it {
                self.purge(key).await?;
            }
        }
        Ok(())
    }
}

fn decode(value: &[u8], id: &AggregateId, aggregate_type: &str) -> Result<Snapshot, SnapshotError> {
    let decoded = (|| -> Result<Snapshot, BoxError> {
        let snapshot: Snapshot = serde_json::from_slice(value)?;
        if !snapshot.state.is_object() {
            return Err("the state is not a JSON object".into());
        }
        Ok(snapshot)
    })();
    decoded.map_err(|source| SnapshotError::deserialization(id.clone(), aggregate_type, source))
}

#[async_trait]
impl SnapshotStore for NatsSnapshotStore {
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        validate::snapshot(snapshot)?;
        // Where a load through it starts reading; without it, a load searches.
        let events_at = self
            .database
            .event_store()
            .locate(
                &snapshot.aggregate_id,
                &snapshot.aggregate_type,
                snapshot.version,
            )
            .await
            .ok()
            .flatten();
        self.save(snapshot, events_at).await
    }

    async fn get_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        Ok(self
            .find(aggregate_id, aggregate_type, None)
            .await?
            .map(|(snapshot, _)| snapshot))
    }

    async fn get_snapshot_at(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
        max_version: u64,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        Ok(self
            .find(aggregate_id, aggregate_type, Some(max_version))
            .await?
            .map(|(snapshot, _)| snapshot))
    }

    async fn delete_snapshot(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let latest = latest_key(aggregate_type, aggregate_id);
        let history = self.history(aggregate_type, aggregate_id).await?;
        let existed = self.entry(&latest).await?.is_some() || !history.is_empty();
        for (_, key) in history {
            self.purge(&key).await?;
        }
        self.purge(&latest).await?;
        Ok(existed)
    }

    async fn snapshot_exists(
        &self,
        aggregate_id: &AggregateId,
        aggregate_type: &str,
    ) -> Result<bool, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let key = latest_key(aggregate_type, aggregate_id);
        let latest = self.entry(&key).await?;
        Ok(latest.is_some() || !self.history(aggregate_type, aggregate_id).await?.is_empty())
    }

    async fn delete_snapshots_by_type(
        &self,
        aggregate_type: &str,
        schema_version_below: Option<u32>,
    ) -> Result<u64, SnapshotError> {
        validate::aggregate_type(aggregate_type)?;
        let ty = token::encode(aggregate_type);
        let mut deleted = 0;
        let mut orphans = Vec::new();
        for prefix in [format!("l.{ty}"), format!("h.{ty}")] {
            for key in self.keys_under(&prefix).await? {
                let Some(entry) = self.entry(&key).await? else {
                    continue;
                };
                let gone = match (
                    schema_version_below,
                    serde_json::from_slice::<Snapshot>(&entry.value),
                ) {
                    (None, _) => true,
                    (Some(below), Ok(snapshot)) => snapshot.schema_version < below,
                    (Some(_), Err(_)) => false,
                };
                if gone {
                    self.purge(&key).await?;
                    deleted += 1;
                    if prefix.starts_with('l') {
                        orphans.push(key);
                    }
                }
            }
        }
        // A schema bound may remove an aggregate's latest snapshot and keep older ones of a
        // newer schema: the newest of those becomes the latest.
        if schema_version_below.is_some() {
            for key in orphans {
                let history = format!("h{}", &key[1..]);
                let mut kept = self.keys_under(&history).await?;
                while let Some(newest) = kept.pop() {
                    if let Some(entry) = self.entry(&newest).await? {
                        self.put(&key, entry.value.to_vec(), entry.events_at)
                            .await?;
                        self.purge(&newest).await?;
                        break;
                    }
                }
            }
        }
        Ok(deleted)
    }
}
