-- Franchisees whose phones are reached through their own systems (SMS, messaging apps) get each
-- fault change POSTed to a URL of theirs, signed with a shared secret, retried until acknowledged.
CREATE TABLE franchisee_webhooks (
  franchisee_id text PRIMARY KEY REFERENCES franchisees,
  url           text NOT NULL,
  secret        text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
  id            bigserial PRIMARY KEY,
  franchisee_id text NOT NULL,
  body          jsonb NOT NULL,
  attempts      integer NOT NULL DEFAULT 0,
  next_at       timestamptz NOT NULL,
  delivered_at  timestamptz,
  failed_at     timestamptz,
  last_error    text,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
