//! The handle: a connection, the events stream and the snapshots bucket, set up or checked.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use snap_core::{AggregateId, BackendError, InvalidInput};

use crate::guesses::Guesses;
use crate::token;
use crate::{NatsEventStore, NatsSnapshotStore};

/// The most snapshots a store can keep per aggregate with
/// [`keep_history`](NatsDatabase::keep_history).
pub const MAX_HISTORY: usize = 64;

/// How to reach a JetStream server (or cluster) and where snap-es keeps its data there.
///
/// ```no_run
/// # async fn run() -> Result<(), snap_core::BackendError> {
/// let database = snap_nats::NatsOptions::new("nats://127.0.0.1:4222")
///     .prefix("billing")
///     .replicas(3)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NatsOptions {
    url: String,
    prefix: String,
    replicas: usize,
    timeout: Duration,
    migrate: bool,
}

impl NatsOptions {
    /// A server at `url` (`nats://host:port`, several separated by commas), the prefix
    /// `snap`, one replica.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "snap".to_owned(),
            replicas: 1,
            timeout: Duration::from_secs(5),
            migrate: true,
        }
    }

    /// The name that keeps this application's data apart: the events stream is
    /// `<PREFIX>_EVENTS` with subjects `<prefix>.events.>`, the snapshots stream
    /// `<PREFIX>_SNAPSHOTS` with subjects `<prefix>.snapshots.>`. 1 to 32 ASCII letters,
    /// digits, `-` and `_`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many servers keep each message: 1 on a single server, 3 (or 5) on a cluster. The
    /// streams are created with it, and existing ones must have it.
    #[must_use]
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// How long a request to the server may take before it fails (default 5 s).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether [`connect`](Self::connect) creates the streams when they are missing and
    /// checks their replicas (the default). With `false` it only opens streams that exist,
    /// whatever their replicas, and a missing one is an error: for tools that must not
    /// create anything.
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Connects and creates the two streams, or checks the ones there.
    pub async fn connect(self) -> Result<NatsDatabase, BackendError> {
        validate_prefix(&self.prefix).map_err(|e| BackendError::new("nats", e))?;
        if !(1..=5).contains(&self.replicas) {
            return Err(BackendError::new(
                "nats",
                format!("replicas must be 1 to 5, got {}", self.replicas),
            ));
        }
        let servers = self
            .url
            .split(',')
            .map(|url| url.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                BackendError::new("nats", e).context(format!("read {}", shown(&self.url)))
            })?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .connect(servers.as_slice())
            .await
            .map_err(|e| {
                BackendError::new("nats", e)
                    .context(format!("connect to {}", shown(&self.url)))
                    .retryable(true)
            })?;
        let context = jetstream::new(client.clone());
        let names = Names::new(&self.prefix);
        let (events, snapshots) = if self.migrate {
            (
                events_stream(&context, &names, self.replicas).await?,
                snapshots_stream(&context, &names, self.replicas).await?,
            )
        } else {
            (
                existing(&context, &names.stream).await?,
                existing(&context, &names.snapshot_stream).await?,
            )
        };
        Ok(NatsDatabase {
            inner: Arc::new(Inner {
                client,
                context,
                events,
                snapshots,
                names,
                timeout: self.timeout,
                heads: Guesses::default(),
                latest: Guesses::default(),
            }),
            keep: 1,
        })
    }
}

/// A URL list as messages show it: user names, passwords and tokens as `***`.
pub(crate) fn shown(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let url = url.trim();
            let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
            let host = rest.rfind('@').map_or(rest, |at| &rest[at + 1..]);
            let hidden = if host.len() < rest.len() { "***@" } else { "" };
            if scheme.is_empty() {
                format!("{hidden}{host}")
            } else {
                format!("{scheme}://{hidden}{host}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A stream that must exist already.
async fn existing(
    context: &jetstream::Context,
    name: &str,
) -> Result<stream::Stream, BackendError> {
    context.get_stream(name).await.map_err(|e| {
        BackendError::new("nats", e).context(format!(
            "open stream {name} (create it with a connect that migrates, or `snap-es migrate`)"
        ))
    })
}

fn validate_prefix(prefix: &str) -> Result<(), InvalidInput> {
    let field = "prefix";
    if prefix.is_empty() {
        return Err(InvalidInput::Empty { field });
    }
    if prefix.len() > 32 {
        return Err(InvalidInput::TooLong {
            field,
            len: prefix.len(),
            max: 32,
        });
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(InvalidInput::InvalidIdentifier {
            field,
            value: prefix.to_owned(),
        });
    }
    Ok(())
}

/// The stream, subject and bucket names of one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) stream: String,
    pub(crate) subjects: String,
    pub(crate) snapshot_stream: String,
    pub(crate) snapshot_subjects: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            stream: format!("{}_EVENTS", prefix.to_uppercase()),
            subjects: format!("{prefix}.events"),
            snapshot_stream: format!("{}_SNAPSHOTS", prefix.to_uppercase()),
            snapshot_subjects: format!("{prefix}.snapshots"),
        }
    }

    /// The subject of one stream of events.
    pub(crate) fn subject(&self, aggregate_type: &str, id: &AggregateId) -> String {
        format!(
            "{}.{}.{}",
            self.subjects,
            token::encode(aggregate_type),
            token::id(id)
        )
    }

    /// The subjects of every stream of one type.
    pub(crate) fn type_subjects(&self, aggregate_type: &str) -> String {
        format!("{}.{}.*", self.subjects, token::encode(aggregate_type))
    }
}

async fn events_stream(
    context: &jetstream::Context,
    names: &Names,
    replicas: usize,
) -> Result<stream::Stream, BackendError> {
    open_stream(
        context,
        stream::Config {
            name: names.stream.clone(),
            subjects: vec![format!("{}.>", names.subjects)],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            allow_direct: true,
            // A save that is sent again after a lost acknowledgement is recognised by its id
            // for this long and stored once.
            duplicate_window: Duration::from_mins(2),
            ..Default::default()
        },
    )
    .await
}

/// The snapshots: one subject per key, of which the stream keeps the last message only, and
/// whose last sequence is the revision a compare-and-set names.
async fn snapshots_stream(
    context: &jetstream::Context,
    names: &Names,
    replicas: usize,
) -> Result<stream::Stream, BackendError> {
    open_stream(
        context,
        stream::Config {
            name: names.snapshot_stream.clone(),
            subjects: vec![format!("{}.>", names.snapshot_subjects)],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            allow_direct: true,
            max_messages_per_subject: 1,
            ..Default::default()
        },
    )
    .await
}

async fn open_stream(
    context: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, BackendError> {
    let (name, replicas) = (config.name.clone(), config.num_replicas);
    let mut stream = context.get_or_create_stream(config).await.map_err(|e| {
        BackendError::new("nats", e).context(format!(
            "create or open stream {name} (a server without JetStream cannot: start nats-server with -js)"
        ))
    })?;
    let info = stream
        .info()
        .await
        .map_err(|e| BackendError::new("nats", e).context(format!("read stream {name}")))?;
    if info.config.num_replicas != replicas {
        return Err(BackendError::new(
            "nats",
            format!(
                "stream {name} has {} replicas, {replicas} are configured",
                info.config.num_replicas
            ),
        ));
    }
    Ok(stream)
}

/// A NATS JetStream database: the connection, the events stream and the snapshots stream,
/// shared by the event store, the snapshot store and the repository built on them. Clones
/// share the connection.
#[derive(Clone)]
pub struct NatsDatabase {
    pub(crate) inner: Arc<Inner>,
    pub(crate) keep: usize,
}

pub(crate) struct Inner {
    pub(crate) client: async_nats::Client,
    pub(crate) context: jetstream::Context,
    pub(crate) events: stream::Stream,
    pub(crate) snapshots: stream::Stream,
    pub(crate) names: Names,
    /// How long a request may wait for the server.
    pub(crate) timeout: Duration,
    /// Each events subject's last seen (version, sequence).
    pub(crate) heads: Guesses<(u64, u64)>,
    /// Each latest-snapshot key's last seen (version, sequence, created at).
    pub(crate) latest: Guesses<(u64, u64, time::OffsetDateTime)>,
}

impl fmt::Debug for NatsDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsDatabase")
            .field("stream", &self.inner.names.stream)
            .field("snapshots", &self.inner.names.snapshot_stream)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl NatsDatabase {
    /// Connects to `url` with the default [`NatsOptions`].
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        NatsOptions::new(url).connect().await
    }

    /// Keeps the `k` highest snapshot versions per aggregate (at most [`MAX_HISTORY`]) in the
    /// stores made from this handle. The latest is always kept, so `0` counts as `1`.
    #[must_use]
    pub fn keep_history(mut self, k: usize) -> Self {
        self.keep = k.clamp(1, MAX_HISTORY);
        self
    }

    /// The event store on this database.
    pub fn event_store(&self) -> NatsEventStore {
        NatsEventStore::new(self.clone())
    }

    /// The snapshot store on this database.
    pub fn snapshot_store(&self) -> NatsSnapshotStore {
        NatsSnapshotStore::new(self.clone())
    }

    /// The events stream's name.
    pub fn stream_name(&self) -> &str {
        &self.inner.names.stream
    }

    /// The snapshots stream's name.
    pub fn snapshot_stream_name(&self) -> &str {
        &self.inner.names.snapshot_stream
    }

    /// Deletes both streams, with everything in them: for tests and tools.
    pub async fn destroy(&self) -> Result<(), BackendError> {
        let context = &self.inner.context;
        context
            .delete_stream(&self.inner.names.stream)
            .await
            .map_err(|e| BackendError::new("nats", e).context("delete the events stream"))?;
        context
            .delete_stream(&self.inner.names.snapshot_stream)
            .await
            .map_err(|e| BackendError::new("nats", e).context("delete the snapshots stream"))?;
        Ok(())
    }

    /// The most bytes a message may hold, as the server says (its `max_payload`, 1 MiB by
    /// default): the bound of one save's events and of one snapshot. A larger one is refused
    /// with `InvalidInput::TooLong` before anything is sent.
    pub fn max_payload(&self) -> usize {
        self.inner.client.server_info().max_payload
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn messages_show_no_credentials() {
        assert_eq!(
            shown("nats://ada:s3cret@10.0.0.1:4222, nats://tok3n@h:4223,nats://h:4224"),
            "nats://***@10.0.0.1:4222,nats://***@h:4223,nats://h:4224"
        );
        assert_eq!(shown("a:b@localhost:4222"), "***@localhost:4222");
        assert_eq!(shown("nats://p@ss:w@rd@h:1"), "nats://***@h:1");
    }
}
