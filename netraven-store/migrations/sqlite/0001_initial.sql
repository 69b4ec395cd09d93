-- NetRaven schema v1 (SQLite). Timestamps are INTEGER microseconds since the Unix epoch (UTC),
-- so they sort and compare correctly; booleans are 0/1.

CREATE TABLE tags (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    description TEXT
);

CREATE TABLE devices (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname        TEXT NOT NULL UNIQUE,
    address         TEXT NOT NULL,
    port            INTEGER NOT NULL,
    platform        TEXT NOT NULL,
    description     TEXT,
    serial          TEXT,
    model           TEXT,
    credential_id   INTEGER,
    host_key_policy TEXT NOT NULL,
    legacy_ssh      BOOLEAN NOT NULL,
    enabled         BOOLEAN NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX devices_platform_idx ON devices (platform, hostname);
CREATE INDEX devices_address_idx ON devices (address);

CREATE TABLE device_tags (
    device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tag_id    INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    PRIMARY KEY (device_id, tag_id)
);
CREATE INDEX device_tags_tag_idx ON device_tags (tag_id, device_id);

CREATE TABLE credentials (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT NOT NULL UNIQUE,
    username          TEXT NOT NULL,
    password_enc      TEXT NOT NULL,
    enable_secret_enc TEXT,
    priority          INTEGER NOT NULL,
    description       TEXT,
    success_count     INTEGER NOT NULL DEFAULT 0,
    failure_count     INTEGER NOT NULL DEFAULT 0,
    last_used         INTEGER,
    created_at        INTEGER NOT NULL
);

CREATE TABLE credential_tags (
    credential_id INTEGER NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    tag_id        INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    PRIMARY KEY (credential_id, tag_id)
);
CREATE INDEX credential_tags_tag_idx ON credential_tags (tag_id, credential_id);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    description   TEXT,
    kind          TEXT NOT NULL,
    targets       TEXT NOT NULL,
    schedule      TEXT NOT NULL,
    schedule_type TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    overlap       TEXT NOT NULL,
    missed        TEXT NOT NULL,
    system        BOOLEAN NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          INTEGER NOT NULL,
    trigger_kind    TEXT NOT NULL,
    fire_time       INTEGER,
    status          TEXT NOT NULL,
    queued_at       INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    total           INTEGER NOT NULL DEFAULT 0,
    succeeded       INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    changed         INTEGER NOT NULL DEFAULT 0,
    unchanged       INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    message         TEXT
);
CREATE UNIQUE INDEX runs_job_fire_uq ON runs (job_id, fire_time);
CREATE UNIQUE INDEX runs_job_idem_uq ON runs (job_id, idempotency_key);
CREATE INDEX runs_job_queued_idx ON runs (job_id, queued_at, id);
CREATE INDEX runs_queued_idx ON runs (queued_at, id);
CREATE INDEX runs_active_idx ON runs (status) WHERE status IN ('QUEUED', 'RUNNING');

CREATE TABLE run_devices (
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL,
    PRIMARY KEY (run_id, device_id)
);

CREATE TABLE device_results (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        INTEGER NOT NULL,
    job_id        INTEGER NOT NULL,
    device_id     INTEGER NOT NULL,
    status        TEXT NOT NULL,
    error_kind    TEXT,
    message       TEXT,
    duration_ms   INTEGER NOT NULL,
    credential_id INTEGER,
    snapshot_id   INTEGER,
    changed       BOOLEAN,
    output        TEXT,
    attempt       INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER NOT NULL,
    UNIQUE (run_id, device_id)
);
CREATE INDEX device_results_device_idx ON device_results (device_id, finished_at, id);
CREATE INDEX device_results_job_idx ON device_results (job_id, finished_at, id);
CREATE INDEX device_results_finished_idx ON device_results (finished_at, id);

CREATE TABLE logs (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    time      INTEGER NOT NULL,
    level     INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    run_id    INTEGER,
    job_id    INTEGER,
    device_id INTEGER,
    source    TEXT NOT NULL,
    message   TEXT NOT NULL,
    fields    TEXT
);
CREATE INDEX logs_time_idx ON logs (time, id);
CREATE INDEX logs_run_idx ON logs (run_id, time, id) WHERE run_id IS NOT NULL;
CREATE INDEX logs_device_idx ON logs (device_id, time, id) WHERE device_id IS NOT NULL;
CREATE INDEX logs_job_idx ON logs (job_id, time, id) WHERE job_id IS NOT NULL;

CREATE TABLE snapshots (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  INTEGER NOT NULL,
    hostname   TEXT NOT NULL,
    run_id     INTEGER,
    hash       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    commit_id  TEXT
);
CREATE INDEX snapshots_device_idx ON snapshots (device_id, created_at, id);
CREATE INDEX snapshots_uncommitted_idx ON snapshots (id) WHERE commit_id IS NULL;

CREATE TABLE snapshot_contents (
    snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots (id) ON DELETE CASCADE,
    content     TEXT NOT NULL
);

-- The latest snapshot of each device, kept by insert_snapshot (latest = greatest (created_at, id)).
CREATE TABLE snapshot_latest (
    device_id   INTEGER PRIMARY KEY,
    snapshot_id INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE host_keys (
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    key_type    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    PRIMARY KEY (host, port)
);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    active        BOOLEAN NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used  INTEGER,
    expires_at INTEGER
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, id);
