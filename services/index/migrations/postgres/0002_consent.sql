-- Disclosure control (postgres flavour). Keep in step with ../sqlite/0002_consent.sql.

-- The current consent of each patient (one row per common health ID): 'all' (every facility of the
-- network may see), 'listed' (only the facilities in `facilities`, a JSON array) or 'opt_out'. A
-- patient without a row shares nothing beyond the facility that holds each record.
CREATE TABLE consents (
    common_id TEXT PRIMARY KEY REFERENCES common_ids (common_id),
    policy TEXT NOT NULL,
    facilities TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    reason TEXT NOT NULL
);

-- Every consent change, appended and never changed.
CREATE TABLE consent_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL,
    common_id TEXT NOT NULL,
    policy TEXT NOT NULL,
    facilities TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX consent_events_common_id ON consent_events (common_id, id);

-- Emergency ("break the glass") access: a user of a facility sees a patient regardless of consent
-- until `expires_unix`, with a mandatory reason. Kept for the audit; never deleted.
CREATE TABLE break_glass (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL,
    common_id TEXT NOT NULL REFERENCES common_ids (common_id),
    facility_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    expires_unix BIGINT NOT NULL
);
CREATE INDEX break_glass_lookup ON break_glass (common_id, facility_id, user_id, expires_unix);
