-- Time-organised storage with fewer B-trees per append (keep in step with ../postgres/0002_time_order.sql).
--
-- `seq` becomes the rowid (INTEGER PRIMARY KEY): rows are stored in log order, which is arrival
-- order and so nearly time order, and every secondary index entry ends in seq, so "newest first"
-- (ORDER BY event_time DESC, seq DESC) is read straight off an index without a sort. Before, BIGINT
-- PRIMARY KEY was a separate unique index beside a hidden rowid: one more B-tree per insert.
-- The (day, event_time) index goes (event_time serves every time range; counts per day are computed
-- from event_time), and event types get their own index so that a type filter (login 110122) is one
-- index range instead of a scan.
CREATE TABLE audit_event_v2 (
    seq INTEGER PRIMARY KEY,
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
    body BLOB NOT NULL
);
INSERT INTO audit_event_v2 (seq, event_id, day, event_time, received_at, event_code, event_type, action, outcome,
                            user_id, patient_id, facility, source_id, break_glass, body)
    SELECT seq, event_id, day, event_time, received_at, event_code, event_type, action, outcome,
           user_id, patient_id, facility, source_id, break_glass, body
    FROM audit_event ORDER BY seq;
DROP TABLE audit_event;
ALTER TABLE audit_event_v2 RENAME TO audit_event;
CREATE INDEX audit_event_time ON audit_event (event_time);
CREATE INDEX audit_event_user ON audit_event (user_id, event_time);
CREATE INDEX audit_event_patient ON audit_event (patient_id, event_time);
CREATE INDEX audit_event_facility ON audit_event (facility, event_time);
CREATE INDEX audit_event_code ON audit_event (event_code, event_time);
CREATE INDEX audit_event_type ON audit_event (event_type, event_time);
