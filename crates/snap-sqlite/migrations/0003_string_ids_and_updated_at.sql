-- snap-es SQLite schema, version 3.
-- Aggregate ids were always stored as text (a UUID as its hyphenated lowercase form), so string
-- ids need no change here: any id is its text form, compared byte by byte.
-- A snapshot now records when the aggregate was first snapshotted (created_at, kept when the
-- snapshot is replaced) and when this snapshot was taken (updated_at). Until now created_at
-- was rewritten on every replacement, so it is the best value there is for both.
ALTER TABLE snapshots ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE snapshots SET updated_at = created_at;
