-- Kizuna patient linkage, SQLite flavour. Keep in step with ../postgres/0001_linkage.sql (same tables,
-- columns and indexes; only identity and floating-point column types differ).

-- Common health IDs (健康共通 ID) ever issued. Never deleted: an ID left without links stays issued.
CREATE TABLE common_ids (
    common_id TEXT PRIMARY KEY,
    issued_at TEXT NOT NULL,
    issued_by TEXT NOT NULL
);

-- Each patient as a facility knows them, with the demographics linkage last saw (JSON).
CREATE TABLE patients (
    facility_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    demographics TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (facility_id, patient_id)
);

-- Blocking keys: patients sharing a key are compared when one of them enrolls.
CREATE TABLE blocking_keys (
    key TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (key, facility_id, patient_id)
);
CREATE INDEX blocking_keys_patient ON blocking_keys (facility_id, patient_id);

-- The current link of each (facility, local patient ID): exactly one common health ID.
CREATE TABLE links (
    facility_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    common_id TEXT NOT NULL REFERENCES common_ids (common_id),
    linked_at TEXT NOT NULL,
    PRIMARY KEY (facility_id, patient_id)
);
CREATE INDEX links_common_id ON links (common_id);

-- Trained matchers (model and thresholds as JSON); the newest is the one in use.
CREATE TABLE models (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trained_at TEXT NOT NULL,
    matcher TEXT NOT NULL,
    report TEXT NOT NULL
);

-- Every change of a link, appended and never changed: who, when, why, and the score behind it.
CREATE TABLE link_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    action TEXT NOT NULL,
    common_id TEXT NOT NULL,
    method TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    match_weight REAL,
    model_id BIGINT
);
CREATE INDEX link_events_patient ON link_events (facility_id, patient_id, id);
CREATE INDEX link_events_common_id ON link_events (common_id, id);

-- Candidates between the thresholds, waiting for an admin.
CREATE TABLE review_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    candidate_common_id TEXT NOT NULL,
    candidate_facility_id TEXT NOT NULL,
    candidate_patient_id TEXT NOT NULL,
    match_weight REAL NOT NULL,
    explanation TEXT NOT NULL,
    model_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    decision_reason TEXT
);
CREATE INDEX review_items_status ON review_items (status, id);
CREATE INDEX review_items_patient ON review_items (facility_id, patient_id);
