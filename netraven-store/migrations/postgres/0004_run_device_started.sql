-- When an attempt started acting on a device of a run (command jobs: never twice).
ALTER TABLE run_devices ADD COLUMN started_at TIMESTAMPTZ;
