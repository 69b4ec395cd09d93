-- Keep the whole index entry of each device's latest snapshot in snapshot_latest, so "latest
-- snapshot of these N devices" is one primary-key lookup per device with no join.
ALTER TABLE snapshot_latest
    ADD COLUMN hostname TEXT NOT NULL DEFAULT '',
    ADD COLUMN run_id BIGINT,
    ADD COLUMN hash TEXT NOT NULL DEFAULT '',
    ADD COLUMN size BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN commit_id TEXT;
UPDATE snapshot_latest l SET hostname = s.hostname, run_id = s.run_id, hash = s.hash,
    size = s.size, commit_id = s.commit_id
FROM snapshots s WHERE s.id = l.snapshot_id;
CREATE INDEX snapshot_latest_snapshot_idx ON snapshot_latest (snapshot_id);
