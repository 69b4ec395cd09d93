-- Zones (remote pollers): a device or a tag names the zone whose workers reach it. NULL: the
-- device's first tag with a zone decides, else the default zone.
ALTER TABLE devices ADD COLUMN zone TEXT;
ALTER TABLE tags ADD COLUMN zone TEXT;
