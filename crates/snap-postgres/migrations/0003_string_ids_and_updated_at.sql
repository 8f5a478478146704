-- snap-es PostgreSQL schema, version 3.
-- Aggregate ids become text: a UUID is kept as its hyphenated lowercase form (what uuid::text
-- gives, so every stored id keeps its meaning), any other id as itself. COLLATE "C" compares
-- ids byte by byte, as every backend lists them, and is the fastest comparison PostgreSQL has.
-- The tables are rewritten once; the primary keys are rebuilt with them.
ALTER TABLE events ALTER COLUMN aggregate_id TYPE TEXT COLLATE "C" USING aggregate_id::text;
ALTER TABLE snapshots ALTER COLUMN aggregate_id TYPE TEXT COLLATE "C" USING aggregate_id::text;
ALTER TABLE snapshot_history
    ALTER COLUMN aggregate_id TYPE TEXT COLLATE "C" USING aggregate_id::text;

-- A snapshot now records when the aggregate was first snapshotted (created_at, kept when the
-- snapshot is replaced) and when this snapshot was taken (updated_at). Until now created_at
-- was rewritten on every replacement, so it is the best value there is for both.
ALTER TABLE snapshots ADD COLUMN updated_at TIMESTAMPTZ;
UPDATE snapshots SET updated_at = created_at;
ALTER TABLE snapshots ALTER COLUMN updated_at SET NOT NULL;
ALTER TABLE snapshot_history ADD COLUMN updated_at TIMESTAMPTZ;
UPDATE snapshot_history SET updated_at = created_at;
ALTER TABLE snapshot_history ALTER COLUMN updated_at SET NOT NULL;
