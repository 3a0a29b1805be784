CREATE TABLE sessions (
  session_id      text PRIMARY KEY,
  user_id         text NOT NULL REFERENCES users,
  terminal_id     text NOT NULL REFERENCES terminals,
  gateway_id      text NOT NULL,
  region_id       text NOT NULL,
  franchisee_id   text NOT NULL,
  state           text NOT NULL CHECK (state IN ('authorizing', 'active', 'stopping', 'completed', 'failed')),
  handshake_ok    boolean NOT NULL DEFAULT false,
  target          jsonb NOT NULL,
  payment         text NOT NULL CHECK (payment IN ('prepaid', 'postpaid')),
  tariff_version  integer NOT NULL,
  held_cents      bigint NOT NULL DEFAULT 0,
  -- The fee may not pass this: the amount target, the prepaid hold or the postpaid credit reserved.
  cap_cents       bigint NOT NULL,
  start_mwh       bigint,
  end_mwh         bigint,
  energy_mwh      bigint NOT NULL DEFAULT 0,
  duration_ms     bigint NOT NULL DEFAULT 0,
  fee_cents       bigint NOT NULL DEFAULT 0,
  -- The exact per-period usage the fee was computed from, for audit.
  meter           jsonb,
  stop_reason     text,
  created_at      timestamptz NOT NULL,
  started_at      timestamptz,
  stop_requested_at timestamptz,
  ended_at        timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (region_id, tariff_version) REFERENCES tariff_versions (region_id, version)
);
-- At most one live session per terminal: a second request is `terminal_busy`.
CREATE UNIQUE INDEX sessions_live_terminal ON sessions (terminal_id) WHERE state IN ('authorizing', 'active', 'stopping');
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_live_postpaid ON sessions (user_id) WHERE payment = 'postpaid' AND state IN ('authorizing', 'active', 'stopping');

-- Commands to terminals, repeated with the same cmd_id until answered or past their deadline.
-- Any control instance may send the repeats; FOR UPDATE SKIP LOCKED shares the work.
CREATE TABLE commands (
  cmd_id       text PRIMARY KEY,
  session_id   text NOT NULL REFERENCES sessions,
  terminal_id  text NOT NULL,
  gateway_id   text NOT NULL,
  type         text NOT NULL CHECK (type IN ('handshake', 'power_on', 'power_off')),
  payload      jsonb NOT NULL,
  status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'acked', 'expired', 'cancelled')),
  attempts     integer NOT NULL DEFAULT 1,
  created_at   timestamptz NOT NULL,
  next_at      timestamptz NOT NULL,
  deadline_at  timestamptz NOT NULL,
  done_at      timestamptz
);
CREATE INDEX commands_due ON commands (next_at) WHERE status = 'pending';
CREATE INDEX commands_session ON commands (session_id, type);
