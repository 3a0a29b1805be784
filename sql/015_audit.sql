-- Audit log: every change made through the admin API and every money movement made by a person
-- (refunds, fault closings...): who, when, what, and the object before and after. Append-only:
-- rows are written in the transaction of the change they describe, and never changed or removed
-- (the triggers below refuse UPDATE, DELETE and TRUNCATE for every role, owner included).
CREATE TABLE audit_log (
  audit_id    bigserial PRIMARY KEY,
  at          timestamptz NOT NULL,
  actor_sub   text NOT NULL,
  actor_role  text NOT NULL,
  action      text NOT NULL,
  object_type text NOT NULL,
  object_id   text NOT NULL,
  before      jsonb,
  after       jsonb,
  reason      text
);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id, audit_id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_sub, audit_id DESC);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE FUNCTION vv_audit_log_append_only() RETURNS trigger
  LANGUAGE plpgsql
  AS $$ BEGIN RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP USING ERRCODE = '42501'; END $$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION vv_audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION vv_audit_log_append_only();
