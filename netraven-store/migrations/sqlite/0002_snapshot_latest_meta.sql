-- Keep the whole index entry of each device's latest snapshot in snapshot_latest, so "latest
-- snapshot of these N devices" is one primary-key lookup per device with no join.
ALTER TABLE snapshot_latest ADD COLUMN hostname TEXT NOT NULL DEFAULT '';
ALTER TABLE snapshot_latest ADD COLUMN run_id INTEGER;
ALTER TABLE snapshot_latest ADD COLUMN hash TEXT NOT NULL DEFAULT '';
ALTER TABLE snapshot_latest ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshot_latest ADD COLUMN commit_id TEXT;
UPDATE snapshot_latest SET
    hostname = (SELECT s.hostname FROM snapshots s WHERE s.id = snapshot_latest.snapshot_id),
    run_id = (SELECT s.run_id FROM snapshots s WHERE s.id = snapshot_latest.snapshot_id),
    hash = (SELECT s.hash FROM snapshots s WHERE s.id = snapshot_latest.snapshot_id),
    size = (SELECT s.size FROM snapshots s WHERE s.id = snapshot_latest.snapshot_id),
    commit_id = (SELECT s.commit_id FROM snapshots s WHERE s.id = snapshot_latest.snapshot_id);
CREATE INDEX snapshot_latest_snapshot_idx ON snapshot_latest (snapshot_id);
