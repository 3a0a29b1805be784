-- Messages that must reach NATS because a transaction committed (finished sessions, later fault
-- changes): written in that transaction, published by the control service's relay, deleted only
-- after JetStream acknowledged them. Nothing is lost between the commit and the publish.
CREATE TABLE outbox (
  id         bigserial PRIMARY KEY,
  subject    text NOT NULL,
  msg_id     text NOT NULL,
  payload    jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
