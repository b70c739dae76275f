-- Kizuna IndexDB, SQLite flavour. Keep in step with ../postgres/0001_init.sql (same tables, columns
-- and indexes; only the types of identity and floating-point columns differ).

-- Sites that may upload: a token (only its sha256 is kept) and the source networks it may come from.
CREATE TABLE sites (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    enabled BIGINT NOT NULL DEFAULT 1,
    allow_cidrs TEXT NOT NULL,
    created_at TEXT NOT NULL,
    token_rotated_at TEXT NOT NULL
);

-- Which site uploads for which facility (a facility belongs to exactly one site).
CREATE TABLE site_facilities (
    facility_id TEXT PRIMARY KEY,
    site TEXT NOT NULL REFERENCES sites(name)
);

-- One row per stored file: the SSMIXIDX fields, then Kizuna's own.
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    volume_label TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    order_date TEXT NOT NULL,
    data_kind TEXT NOT NULL,
    order_no TEXT NOT NULL,
    processing_type TEXT NOT NULL,
    enter_org_cd TEXT NOT NULL,
    transaction_datetime TEXT NOT NULL,
    out_rel_directory TEXT NOT NULL,
    file_name TEXT NOT NULL,
    update_datetime TEXT NOT NULL,
    version_key TEXT NOT NULL,
    condition_flag TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    received_at TEXT NOT NULL,
    site TEXT NOT NULL,
    message_type TEXT NOT NULL,
    journal_seq BIGINT NOT NULL,
    UNIQUE (facility_id, version_key)
);
CREATE INDEX records_by_patient ON records (facility_id, patient_id, order_date DESC, transaction_datetime DESC);
CREATE INDEX records_by_file ON records (facility_id, file_name);
CREATE INDEX records_by_kind ON records (facility_id, patient_id, data_kind, order_date DESC);

-- Drugs prescribed (RXE in RDE^O11) and administered (RXA in RAS^O17).
CREATE TABLE drugs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id BIGINT NOT NULL REFERENCES records(id),
    facility_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    order_date TEXT NOT NULL,
    item_no BIGINT NOT NULL,
    source TEXT NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    coding_system TEXT NOT NULL,
    dose TEXT NOT NULL,
    dose_unit TEXT NOT NULL,
    days TEXT NOT NULL,
    route TEXT NOT NULL,
    given_at TEXT NOT NULL
);
CREATE INDEX drugs_by_patient ON drugs (facility_id, patient_id, order_date DESC);
CREATE INDEX drugs_by_code ON drugs (code);
CREATE INDEX drugs_by_record ON drugs (record_id);

-- Lab and physiology results (OBX in OUL^R22 and ORU^R01).
CREATE TABLE labs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id BIGINT NOT NULL REFERENCES records(id),
    facility_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    order_date TEXT NOT NULL,
    item_no BIGINT NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    coding_system TEXT NOT NULL,
    value_type TEXT NOT NULL,
    value TEXT NOT NULL,
    value_num REAL,
    units TEXT NOT NULL,
    reference_range TEXT NOT NULL,
    abnormal_flags TEXT NOT NULL,
    result_status TEXT NOT NULL,
    observed_at TEXT NOT NULL
);
CREATE INDEX labs_by_patient ON labs (facility_id, patient_id, code, observed_at DESC);
CREATE INDEX labs_by_code ON labs (code);
CREATE INDEX labs_by_record ON labs (record_id);

-- Diagnoses (PRB in PPR^ZD1, DG1 in ADT messages).
CREATE TABLE diagnoses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id BIGINT NOT NULL REFERENCES records(id),
    facility_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    item_no BIGINT NOT NULL,
    source TEXT NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    coding_system TEXT NOT NULL,
    icd10 TEXT NOT NULL,
    onset_date TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX diagnoses_by_patient ON diagnoses (facility_id, patient_id);
CREATE INDEX diagnoses_by_code ON diagnoses (code);
CREATE INDEX diagnoses_by_icd10 ON diagnoses (icd10);
CREATE INDEX diagnoses_by_record ON diagnoses (record_id);

-- Patient movements from ADT messages: admissions, discharges, transfers, visits and their cancels.
CREATE TABLE encounters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id BIGINT NOT NULL REFERENCES records(id),
    facility_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    event TEXT NOT NULL,
    trigger_event TEXT NOT NULL,
    event_time TEXT NOT NULL,
    patient_class TEXT NOT NULL,
    ward TEXT NOT NULL
);
CREATE INDEX encounters_by_patient ON encounters (facility_id, patient_id, event_time DESC);
CREATE INDEX encounters_by_record ON encounters (record_id);

-- Files refused, for the admin screen; one row per (facility, path, content).
CREATE TABLE rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    codes TEXT NOT NULL,
    reason TEXT NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    times BIGINT NOT NULL,
    UNIQUE (facility_id, path, sha256)
);
CREATE INDEX rejections_by_site ON rejections (site, last_at DESC);

-- Per-site counters per UTC day.
CREATE TABLE site_daily (
    site TEXT NOT NULL,
    day TEXT NOT NULL,
    stored BIGINT NOT NULL,
    duplicate BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    PRIMARY KEY (site, day)
);
CREATE TABLE site_reject_codes (
    site TEXT NOT NULL,
    day TEXT NOT NULL,
    code TEXT NOT NULL,
    files BIGINT NOT NULL,
    PRIMARY KEY (site, day, code)
);

-- The latest state of each site's agent and uploads.
CREATE TABLE site_status (
    site TEXT PRIMARY KEY,
    last_batch_at TEXT,
    last_stored_at TEXT,
    last_heartbeat_at TEXT,
    agent_version TEXT,
    queue_depth BIGINT,
    quarantined BIGINT,
    agent_last_upload TEXT,
    last_peer TEXT
);

-- Every heartbeat received.
CREATE TABLE heartbeats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    received_at TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    queue_depth BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    agent_last_upload TEXT
);
CREATE INDEX heartbeats_by_site ON heartbeats (site, received_at DESC);

-- The agents' daily log summaries and their ERROR/WARN lines.
CREATE TABLE daily_logs (
    site TEXT NOT NULL,
    day TEXT NOT NULL,
    files_uploaded BIGINT NOT NULL,
    files_quarantined BIGINT NOT NULL,
    upload_errors BIGINT NOT NULL,
    truncated BIGINT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (site, day)
);
CREATE TABLE daily_log_lines (
    site TEXT NOT NULL,
    day TEXT NOT NULL,
    line_no BIGINT NOT NULL,
    time TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (site, day, line_no)
);

-- Store bookkeeping: `applied_seq` = every journal entry up to it is in this index.
CREATE TABLE store_state (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO store_state (key, value) VALUES ('applied_seq', 0);
