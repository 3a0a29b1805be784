-- Wallets: users carry cached balances, and every change to them is a ledger entry in the same
-- transaction, so the entries of a user always sum to the cached figures (checked by tests).

CREATE TABLE users (
  user_id            text PRIMARY KEY,
  credit_limit_cents bigint NOT NULL DEFAULT 0 CHECK (credit_limit_cents >= 0),
  balance_cents      bigint NOT NULL DEFAULT 0,
  held_cents         bigint NOT NULL DEFAULT 0 CHECK (held_cents >= 0),
  debt_cents         bigint NOT NULL DEFAULT 0 CHECK (debt_cents >= 0),
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CHECK (balance_cents >= held_cents)
);

CREATE TABLE wallet_ledger (
  entry_id      bigserial PRIMARY KEY,
  user_id       text NOT NULL REFERENCES users,
  kind          text NOT NULL CHECK (kind IN ('topup', 'hold', 'release', 'capture', 'debt', 'debt_settlement')),
  balance_delta bigint NOT NULL DEFAULT 0,
  held_delta    bigint NOT NULL DEFAULT 0,
  debt_delta    bigint NOT NULL DEFAULT 0,
  session_id    text,
  reference     text,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX wallet_ledger_user ON wallet_ledger (user_id, entry_id);
-- A top-up reference credits once, however often it is sent.
CREATE UNIQUE INDEX wallet_ledger_topup_reference ON wallet_ledger (user_id, reference) WHERE kind = 'topup';
-- A session holds, releases, captures and incurs debt at most once each.
CREATE UNIQUE INDEX wallet_ledger_session_once ON wallet_ledger (session_id, kind) WHERE session_id IS NOT NULL;
