-- How a device is reached: its transport ('ssh', or 'telnet' for legacy gear, opted in per
-- device) and the named jump host (SSH bastion) in front of it, if any.
ALTER TABLE devices ADD COLUMN transport TEXT NOT NULL DEFAULT 'ssh';
ALTER TABLE devices ADD COLUMN jump_host TEXT;
-- Named SSH bastions. The password is sealed with the store's cipher like a credential's;
-- host_key is an optional pinned "SHA256:..." fingerprint; via names the jump host in front of
-- this one (chaining).
CREATE TABLE jump_hosts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL UNIQUE,
    address         TEXT NOT NULL,
    port            INTEGER NOT NULL,
    username        TEXT NOT NULL,
    password_enc    TEXT NOT NULL,
    host_key_policy TEXT NOT NULL DEFAULT 'tofu',
    host_key        TEXT,
    via             TEXT,
    description     TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
