-- Franchisees' daily packages (steps 109-110): one row per franchisee and day once its package was
-- made; the package itself goes out through the outbox in the same transaction, so it is published
-- once however many control instances look for due packages.
CREATE TABLE franchisee_packages (
  franchisee_id text NOT NULL REFERENCES franchisees,
  day           date NOT NULL,
  timezone      text NOT NULL,
  made_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (franchisee_id, day)
);
