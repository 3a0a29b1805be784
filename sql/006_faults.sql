-- Faults: one row per fault episode of a kind on a terminal; repeats raise `count`. At most one
-- unresolved fault per (terminal, kind), which makes an "open" for an open fault a repeat.
CREATE TABLE faults (
  fault_id        text PRIMARY KEY,
  kind            text NOT NULL,
  terminal_id     text NOT NULL REFERENCES terminals,
  franchisee_id   text NOT NULL,
  region_id       text NOT NULL,
  status          text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
  count           integer NOT NULL DEFAULT 1,
  evidence        jsonb NOT NULL,
  opened_at       timestamptz NOT NULL,
  last_seen_at    timestamptz NOT NULL,
  acknowledged_at timestamptz,
  acknowledged_by text,
  resolved_at     timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX faults_one_unresolved ON faults (terminal_id, kind) WHERE status <> 'resolved';
CREATE INDEX faults_franchisee ON faults (franchisee_id, status, opened_at DESC);
