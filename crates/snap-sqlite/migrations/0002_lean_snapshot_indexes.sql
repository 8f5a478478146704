-- snap-es SQLite schema, version 2.
-- No query reads snapshots by created_at, and the index made every snapshot write touch one
-- more page (and fsync it): it goes.
DROP INDEX IF EXISTS snapshots_created_at;
