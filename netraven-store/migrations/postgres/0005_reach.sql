-- Who changed a configuration: read from the device's own text (IOS "! Last configuration
-- change ... by USER", Junos "## Last changed: ... by USER") or the triggering syslog message.
ALTER TABLE snapshots ADD COLUMN author TEXT;
ALTER TABLE snapshot_latest ADD COLUMN author TEXT;
-- A device's own timeout multiplier in percent (NULL: its platform's).
ALTER TABLE devices ADD COLUMN timeout_percent INTEGER;
