-- Time-organised storage (keep in step with ../sqlite/0002_time_order.sql).
--
-- Every secondary index ends in (event_time, seq), so "newest first" (ORDER BY event_time DESC,
-- seq DESC) is read straight off an index without a sort. The (day, event_time)
-- index goes (counts per day are computed from event_time), and event types get their own index so
-- that a type filter (login 110122) is one index range instead of a scan.
-- (Declarative partitioning by month was not used: PostgreSQL requires every unique constraint to
-- contain the partition key, and the log's exactly-once intake needs event_id unique across the log.)
DROP INDEX audit_event_day;
DROP INDEX audit_event_time;
DROP INDEX audit_event_user;
DROP INDEX audit_event_patient;
DROP INDEX audit_event_facility;
DROP INDEX audit_event_code;
CREATE INDEX audit_event_time ON audit_event (event_time, seq);
CREATE INDEX audit_event_user ON audit_event (user_id, event_time, seq);
CREATE INDEX audit_event_patient ON audit_event (patient_id, event_time, seq);
CREATE INDEX audit_event_facility ON audit_event (facility, event_time, seq);
CREATE INDEX audit_event_code ON audit_event (event_code, event_time, seq);
CREATE INDEX audit_event_type ON audit_event (event_type, event_time, seq);
