-- snap-es PostgreSQL schema, version 2.
-- No query reads snapshots by created_at. Without that index, replacing an aggregate's
-- snapshot changes no indexed column, so PostgreSQL can update the row in place (a HOT
-- update: no index entry written); free space left on each page lets it do so.
DROP INDEX IF EXISTS snapshots_created_at;
DROP INDEX IF EXISTS snapshot_history_created_at;
ALTER TABLE snapshots SET (fillfactor = 80);
