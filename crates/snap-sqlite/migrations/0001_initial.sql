-- snap-es SQLite schema, version 1.
-- Ids are hyphenated UUID text, timestamps integer microseconds since the Unix epoch (UTC),
-- JSON is stored as text.

-- Snapshots: the latest version per aggregate, or the k highest with keep_history(k).
-- A rowid table, because states can be large (WITHOUT ROWID suits small rows only).
CREATE TABLE snapshots (
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    schema_version INTEGER NOT NULL CHECK (schema_version >= 1),
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, version)
);
CREATE INDEX snapshots_type_schema ON snapshots (aggregate_type, schema_version);
CREATE INDEX snapshots_created_at ON snapshots (created_at);

-- Events: one dense stream per (aggregate_type, aggregate_id), versions from 1.
-- Clustered on the key, so a stream range is one sequential scan.
CREATE TABLE events (
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    metadata TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, version)
) WITHOUT ROWID;
