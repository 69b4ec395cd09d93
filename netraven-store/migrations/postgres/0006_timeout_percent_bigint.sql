-- 0005 added timeout_percent as INTEGER (INT4), which the store reads as a 64-bit integer like
-- every other integer column here: reading a device with a multiplier failed. BIGINT like the rest.
ALTER TABLE devices ALTER COLUMN timeout_percent TYPE BIGINT;
