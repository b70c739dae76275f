-- Kizuna audit log, PostgreSQL flavour. Keep in step with ../sqlite/0001_audit.sql.

-- One row per audit event. `seq` is the Merkle leaf index; `body` is the exact leaf data (canonical
-- JSON) and every other column is derived from it for search: `kizuna audit verify` re-derives them.
-- Organised by time: `day` (UTC yyyymmdd of the event) is the partition key every time-bounded query
-- uses; the per-dimension indexes end in event_time so a filter plus a time range is one index range.
CREATE TABLE audit_event (
    seq BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    day BIGINT NOT NULL,
    event_time BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    event_code TEXT NOT NULL,
    event_type TEXT,
    action TEXT NOT NULL,
    outcome BIGINT NOT NULL,
    user_id TEXT,
    patient_id TEXT,
    facility TEXT,
    source_id TEXT NOT NULL,
    break_glass BIGINT NOT NULL,
    body BYTEA NOT NULL
);
CREATE INDEX audit_event_day ON audit_event (day, event_time);
CREATE INDEX audit_event_time ON audit_event (event_time);
CREATE INDEX audit_event_user ON audit_event (user_id, event_time);
CREATE INDEX audit_event_patient ON audit_event (patient_id, event_time);
CREATE INDEX audit_event_facility ON audit_event (facility, event_time);
CREATE INDEX audit_event_code ON audit_event (event_code, event_time);

-- Signed tree heads. `tst` is the RFC 3161 TimeStampToken (DER ContentInfo) over the signed checkpoint.
CREATE TABLE audit_checkpoint (
    tree_size BIGINT PRIMARY KEY,
    root_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature BYTEA NOT NULL,
    tst BYTEA
);

-- Pairwise user id -> real subject, fed by the auth service; readable by auditors only.
CREATE TABLE audit_pseudonym (
    pairwise_id TEXT PRIMARY KEY,
    sector TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    display_name TEXT,
    registered_at BIGINT NOT NULL
);
CREATE INDEX audit_pseudonym_subject ON audit_pseudonym (subject_id);
