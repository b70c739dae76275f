-- The search rows (drugs, labs, diagnoses, encounters) are written behind the upload's answer by
-- their own writer. `search_seq`: every record whose journal_seq is at or below it has all its
-- search rows. Until now they were written with their records, so they are complete up to the
-- applied watermark.
INSERT INTO store_state (key, value) SELECT 'search_seq', value FROM store_state WHERE key = 'applied_seq';
