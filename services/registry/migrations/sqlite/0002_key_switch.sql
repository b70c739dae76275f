-- A rotated key's coordinated switch: the key it replaces and the UNIX time at which every
-- router switches from that key to `public_key` (both NULL when no rotation happened).
ALTER TABLE site_keys ADD COLUMN previous_key TEXT;
ALTER TABLE site_keys ADD COLUMN switch_unix BIGINT;
