-- Usage facts (flows 107-110): each completed session's energy by local hour of its region, from
-- the meter registers of its stored readings. The hours of one session sum exactly to its billed
-- energy (the last hour ends on the billed register), so a lost reading moves energy into the next
-- hour that has one, and never loses it. Reports group these by user, terminal, region and
-- franchisee (control/reports/). A plain table on both storage paths: a continuous aggregate cannot
-- follow a session's window, and a session is rolled once, when it is over.

ALTER TABLE sessions ADD COLUMN usage_rolled_at timestamptz;
CREATE INDEX sessions_usage_pending ON sessions (ended_at) WHERE state = 'completed' AND usage_rolled_at IS NULL;

-- One row per session and local hour it ran in, with the energy and the time it ran in that hour.
-- The session's last hour also carries its fee and counts the session (`sessions` = 1), so that
-- one scan of this table answers a report: no join, whatever the planner estimates. The grouping keys and the session's
-- start (reports select sessions by start) are copied from the session.
CREATE TABLE session_usage (
  session_id    text NOT NULL REFERENCES sessions,
  -- The start of the local hour (region's time zone) as an instant, and its hour of day and day.
  hour_start    timestamptz NOT NULL,
  hour_of_day   smallint NOT NULL CHECK (hour_of_day BETWEEN 0 AND 23),
  local_day     date NOT NULL,
  energy_mwh    bigint NOT NULL CHECK (energy_mwh >= 0),
  -- How long in this hour the session ran (power on to power off): the terminal's busy time.
  busy_ms       bigint NOT NULL CHECK (busy_ms >= 0),
  fee_cents     bigint NOT NULL DEFAULT 0,
  sessions      smallint NOT NULL DEFAULT 0 CHECK (sessions IN (0, 1)),
  started_at    timestamptz NOT NULL,
  user_id       text NOT NULL,
  terminal_id   text NOT NULL,
  region_id     text NOT NULL,
  franchisee_id text NOT NULL,
  PRIMARY KEY (session_id, hour_start)
);
CREATE INDEX session_usage_started ON session_usage (started_at);
CREATE INDEX session_usage_user ON session_usage (user_id, started_at);
CREATE INDEX session_usage_franchisee ON session_usage (franchisee_id, started_at);
CREATE INDEX session_usage_hour ON session_usage (hour_start);
CREATE INDEX session_usage_region_hour ON session_usage (region_id, hour_start);
CREATE INDEX session_usage_terminal_hour ON session_usage (terminal_id, hour_start);

-- Rolls up to max_sessions completed sessions that ended before settle_before and whose readings
-- are in: the terminal has a stored reading at or after the session's end (the writer caught up),
-- or the session ended an hour before settle_before (the writer was away; the hours are then as
-- good as the readings stored). Several control instances may run it at once (SKIP LOCKED).
CREATE FUNCTION vv_roll_session_usage(settle_before timestamptz, max_sessions integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  n integer;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS vv_rolling (
    session_id text, terminal_id text, started_at timestamptz, ended_at timestamptz,
    start_mwh bigint, end_mwh bigint, tz text, fee_cents bigint, user_id text, region_id text, franchisee_id text
  ) ON COMMIT DROP;
  TRUNCATE vv_rolling;
  INSERT INTO vv_rolling
  SELECT s.session_id, s.terminal_id, s.started_at, s.ended_at, coalesce(s.start_mwh, 0),
         -- The billed register: the hours must sum to the billed energy.
         coalesce(s.start_mwh, 0) + s.energy_mwh, r.timezone, s.fee_cents, s.user_id, s.region_id, s.franchisee_id
  FROM sessions s JOIN regions r USING (region_id)
  WHERE s.state = 'completed' AND s.usage_rolled_at IS NULL AND s.ended_at < settle_before
    AND s.started_at IS NOT NULL
    AND (s.ended_at < settle_before - interval '1 hour'
         OR EXISTS (SELECT 1 FROM readings x WHERE x.terminal_id = s.terminal_id AND x.ts >= s.ended_at))
  ORDER BY s.ended_at
  LIMIT max_sessions
  FOR UPDATE OF s SKIP LOCKED;

  INSERT INTO session_usage (session_id, hour_start, hour_of_day, local_day, energy_mwh, busy_ms, fee_cents, sessions,
                             started_at, user_id, terminal_id, region_id, franchisee_id)
  SELECT h.session_id, h.hs, extract(hour FROM h.lh)::smallint, h.lh::date, h.mwh - h.prev,
         -- The session's run within [this local hour's start, the next one's).
         greatest(0, (extract(epoch FROM least(v.ended_at, (h.lh + interval '1 hour') AT TIME ZONE v.tz) - greatest(v.started_at, h.hs)) * 1000)::bigint),
         CASE WHEN h.last THEN v.fee_cents ELSE 0 END, CASE WHEN h.last THEN 1 ELSE 0 END,
         v.started_at, v.user_id, v.terminal_id, v.region_id, v.franchisee_id
  FROM (
    SELECT session_id, lh, lh AT TIME ZONE tz AS hs, mwh, lag(mwh, 1, start_mwh) OVER w AS prev, lead(lh) OVER w IS NULL AS last
    FROM (
      -- The register at the end of each local hour: the running maximum (an hour without
      -- readings keeps the one before), kept within the session's first and billed registers.
      SELECT session_id, lh, tz, start_mwh,
             max(least(greatest(coalesce(mwh, start_mwh), start_mwh), end_mwh)) OVER (PARTITION BY session_id ORDER BY lh) AS mwh
      FROM (
        SELECT session_id, lh, tz, start_mwh, end_mwh, max(mwh) AS mwh
        FROM (
          -- Every local hour the session ran in: its span sampled every 15 minutes (time zones
          -- are offset by whole quarter hours), each sample's local hour, once.
          SELECT v.session_id, date_trunc('hour', g AT TIME ZONE v.tz) AS lh, v.tz, v.start_mwh, v.end_mwh, NULL::bigint AS mwh
          FROM vv_rolling v, generate_series(date_bin(interval '15 minutes', v.started_at, timestamptz 'epoch'), v.ended_at, interval '15 minutes') g
          UNION ALL
          SELECT v.session_id, date_trunc('hour', rd.ts AT TIME ZONE v.tz), v.tz, v.start_mwh, v.end_mwh, rd.energy_mwh
          FROM vv_rolling v JOIN readings rd ON rd.terminal_id = v.terminal_id AND rd.ts >= v.started_at AND rd.ts <= v.ended_at
          UNION ALL
          -- The session's last hour ends on the billed register.
          SELECT session_id, date_trunc('hour', ended_at AT TIME ZONE tz), tz, start_mwh, end_mwh, end_mwh FROM vv_rolling
        ) marks
        GROUP BY session_id, lh, tz, start_mwh, end_mwh
      ) per_hour
    ) cum
    WINDOW w AS (PARTITION BY session_id ORDER BY lh)
  ) h JOIN vv_rolling v USING (session_id);

  UPDATE sessions s SET usage_rolled_at = now() FROM vv_rolling v WHERE s.session_id = v.session_id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
