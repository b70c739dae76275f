-- What the search rows lacked for a clinician (review "clinical correctness"): each drug's usage
-- (TQ1-3), instructions (RXE-7), daily dose (RXE-19), total (RXE-10/11), rate (RXE-23/24), start
-- and end (TQ1-7/8, RXA-4), and for an injection's RXC rows the item number of their RXE; the
-- code of a coded lab value (its text is in `value`); a diagnosis's outcome text (PRB-14.2) and
-- resolution date (PRB-9). Rows written before this migration have NULL here until the search
-- rows are rebuilt (store README, "Re-deriving the search rows").
ALTER TABLE drugs ADD COLUMN component_of BIGINT;
ALTER TABLE drugs ADD COLUMN usage_code TEXT;
ALTER TABLE drugs ADD COLUMN usage_text TEXT;
ALTER TABLE drugs ADD COLUMN instructions TEXT;
ALTER TABLE drugs ADD COLUMN daily_dose TEXT;
ALTER TABLE drugs ADD COLUMN daily_dose_unit TEXT;
ALTER TABLE drugs ADD COLUMN total TEXT;
ALTER TABLE drugs ADD COLUMN total_unit TEXT;
ALTER TABLE drugs ADD COLUMN rate TEXT;
ALTER TABLE drugs ADD COLUMN rate_unit TEXT;
ALTER TABLE drugs ADD COLUMN start_time TEXT;
ALTER TABLE drugs ADD COLUMN end_time TEXT;
ALTER TABLE labs ADD COLUMN value_code TEXT;
ALTER TABLE diagnoses ADD COLUMN status_text TEXT;
ALTER TABLE diagnoses ADD COLUMN resolved_date TEXT;
