-- Paying in through a payment provider, refunds of captured fees, and withdrawals back through
-- the provider (issue 13). Every change of a wallet is still one ledger entry written in the same
-- statement as the cached figures (control/wallet.ts `post`); these tables say why.

ALTER TABLE wallet_ledger DROP CONSTRAINT wallet_ledger_kind_check;
ALTER TABLE wallet_ledger ADD CONSTRAINT wallet_ledger_kind_check CHECK (kind IN (
  'topup', 'hold', 'release', 'capture', 'debt', 'debt_settlement',
  -- A provider payment credited to the wallet (reference `pay:<provider>:<transactionId>`).
  'payment',
  -- Part or all of a session's captured fee given back (reference: the refund id).
  'refund',
  -- Balance paid out through the provider, and its reversal when the payout failed.
  'withdrawal', 'withdrawal_reversal'));

-- A session still holds, releases, captures and incurs debt at most once each; refunds are many
-- per session (each once by its own reference, below).
DROP INDEX wallet_ledger_session_once;
CREATE UNIQUE INDEX wallet_ledger_session_once ON wallet_ledger (session_id, kind) WHERE session_id IS NOT NULL AND kind <> 'refund';
-- Each entry of the new kinds, and each settlement of debt, happens once per reference.
CREATE UNIQUE INDEX wallet_ledger_reference_once ON wallet_ledger (user_id, kind, reference)
  WHERE kind IN ('payment', 'refund', 'withdrawal', 'withdrawal_reversal', 'debt_settlement') AND reference IS NOT NULL;

-- An order created for a user at a provider: the user pays it in the provider's app, and the
-- provider's signed notification (or a query for an order whose notification never came) credits
-- the wallet once per provider transaction id.
CREATE TABLE payment_orders (
  order_id        text PRIMARY KEY,
  provider        text NOT NULL,
  user_id         text NOT NULL REFERENCES users,
  -- `topup` credits the wallet (debt is settled first); `debt` is the same payment, made to pay off debt.
  purpose         text NOT NULL CHECK (purpose IN ('topup', 'debt')),
  amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'closed')),
  idempotency_key text NOT NULL,
  transaction_id  text,
  -- The payer's account at the provider (WeChat openid, Alipay buyer id): where withdrawals go.
  payer_ref       text,
  created_at      timestamptz NOT NULL,
  expires_at      timestamptz NOT NULL,
  paid_at         timestamptz,
  UNIQUE (user_id, idempotency_key)
);
CREATE UNIQUE INDEX payment_orders_transaction ON payment_orders (provider, transaction_id) WHERE transaction_id IS NOT NULL;
CREATE INDEX payment_orders_user ON payment_orders (user_id, created_at DESC);
CREATE INDEX payment_orders_pending ON payment_orders (created_at) WHERE status = 'pending';

-- Every notification the platform accepted (its nonce once: a replayed one is refused) or refused
-- (bad signature, stale timestamp, replay, unknown order, wrong amount), for the operator.
CREATE TABLE payment_notifications (
  id          bigserial PRIMARY KEY,
  provider    text NOT NULL,
  accepted    boolean NOT NULL,
  reason      text,
  nonce       text,
  order_id    text,
  transaction_id text,
  -- The first 2000 characters of the body, as received.
  body        text NOT NULL,
  received_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX payment_notifications_nonce ON payment_notifications (provider, nonce) WHERE accepted AND nonce IS NOT NULL;
CREATE INDEX payment_notifications_refused ON payment_notifications (received_at DESC) WHERE NOT accepted;

-- A refund of part or all of a session's captured fee, by an admin, once per idempotency key.
CREATE TABLE refunds (
  refund_id       text PRIMARY KEY,
  session_id      text NOT NULL REFERENCES sessions,
  user_id         text NOT NULL REFERENCES users,
  franchisee_id   text NOT NULL,
  terminal_id     text NOT NULL,
  amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
  reason          text NOT NULL,
  idempotency_key text NOT NULL UNIQUE,
  actor           text NOT NULL,
  created_at      timestamptz NOT NULL
);
CREATE INDEX refunds_session ON refunds (session_id);
CREATE INDEX refunds_franchisee ON refunds (franchisee_id, created_at);

-- Balance paid out to the user's account at the provider. `pending` until the provider answers;
-- a failed payout is reversed into the balance (ledger `withdrawal_reversal`).
CREATE TABLE withdrawals (
  withdrawal_id   text PRIMARY KEY,
  user_id         text NOT NULL REFERENCES users,
  provider        text NOT NULL,
  payer_ref       text NOT NULL,
  amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  idempotency_key text NOT NULL,
  actor           text NOT NULL,
  transaction_id  text,
  failure         text,
  created_at      timestamptz NOT NULL,
  done_at         timestamptz,
  UNIQUE (user_id, idempotency_key)
);
CREATE INDEX withdrawals_pending ON withdrawals (created_at) WHERE status = 'pending';
