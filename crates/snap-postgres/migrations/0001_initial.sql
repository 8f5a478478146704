-- snap-es PostgreSQL schema, version 1. Table names are unqualified: migrate() runs this
-- with the store's schema first on the search path.

-- The latest snapshot of each aggregate. One row per aggregate, so the monotonic save is a
-- single INSERT .. ON CONFLICT .. DO UPDATE .. WHERE statement.
CREATE TABLE snapshots (
    aggregate_type TEXT NOT NULL,
    aggregate_id UUID NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    schema_version BIGINT NOT NULL CHECK (schema_version >= 1),
    state JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
CREATE INDEX snapshots_type_schema ON snapshots (aggregate_type, schema_version);
CREATE INDEX snapshots_created_at ON snapshots (created_at);

-- Older versions kept by keep_history(k > 1): at most k - 1 per aggregate, all below the
-- version in snapshots.
CREATE TABLE snapshot_history (
    aggregate_type TEXT NOT NULL,
    aggregate_id UUID NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    schema_version BIGINT NOT NULL CHECK (schema_version >= 1),
    state JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, version)
);
CREATE INDEX snapshot_history_type_schema ON snapshot_history (aggregate_type, schema_version);
CREATE INDEX snapshot_history_created_at ON snapshot_history (created_at);

-- Events: one dense stream per (aggregate_type, aggregate_id), versions from 1. The primary
-- key turns a lost append race into a unique violation.
CREATE TABLE events (
    aggregate_type TEXT NOT NULL,
    aggregate_id UUID NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    payload JSONB NOT NULL,
    metadata JSONB NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, version)
);
