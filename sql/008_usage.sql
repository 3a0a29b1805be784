-- Usage facts (flows 107-110): each completed session's energy by local hour of its region, from
-- the meter registers of its stored readings. The hours of one session sum exactly to its billed
-- energy (the last hour ends on the billed register), so a lost reading moves energy into the next
-- hour that has one, and never loses it. Reports group these by user, terminal, region and
-- franchisee (control/reports/). A plain table on both storage paths: a continuous aggregate cannot
-- follow a session's window, and a session is rolled once, when it is over.

ALTER TABLE sessions ADD COLUMN usage_rolled_at timestamptz;
CREATE INDEX sessions_usage_pending ON sessions (ended_at) WHERE state = 'completed' AND usage_rolled_at IS NULL;
-- Reports select sessions by start.
CREATE INDEX sessions_started ON sessions (started_at) WHERE usage_rolled_at IS NOT NULL;
CREATE INDEX sessions_user_started ON sessions (user_id, started_at) WHERE usage_rolled_at IS NOT NULL;
CREATE INDEX sessions_franchisee_started ON sessions (franchisee_id, started_at) WHERE usage_rolled_at IS NOT NULL;

CREATE TABLE session_usage (
  session_id    text NOT NULL REFERENCES sessions,
  -- The start of the local hour (region's time zone) as an instant, and its hour of day and day.
  hour_start    timestamptz NOT NULL,
  hour_of_day   smallint NOT NULL CHECK (hour_of_day BETWEEN 0 AND 23),
  local_day     date NOT NULL,
  energy_mwh    bigint NOT NULL CHECK (energy_mwh >= 0),
  PRIMARY KEY (session_id, hour_start)
);

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
    start_mwh bigint, end_mwh bigint, tz text
  ) ON COMMIT DROP;
  TRUNCATE vv_rolling;
  INSERT INTO vv_rolling
  SELECT s.session_id, s.terminal_id, s.started_at, s.ended_at, coalesce(s.start_mwh, 0),
         -- The billed register: the hours must sum to the billed energy.
         coalesce(s.start_mwh, 0) + s.energy_mwh, r.timezone
  FROM sessions s JOIN regions r USING (region_id)
  WHERE s.state = 'completed' AND s.usage_rolled_at IS NULL AND s.ended_at < settle_before
    AND s.started_at IS NOT NULL
    AND (s.ended_at < settle_before - interval '1 hour'
         OR EXISTS (SELECT 1 FROM readings x WHERE x.terminal_id = s.terminal_id AND x.ts >= s.ended_at))
  ORDER BY s.ended_at
  LIMIT max_sessions
  FOR UPDATE OF s SKIP LOCKED;

  INSERT INTO session_usage (session_id, hour_start, hour_of_day, local_day, energy_mwh)
  SELECT session_id, lh AT TIME ZONE tz, extract(hour FROM lh)::smallint, lh::date, mwh - prev
  FROM (
    SELECT session_id, lh, tz, mwh, lag(mwh, 1, start_mwh) OVER (PARTITION BY session_id ORDER BY lh) AS prev
    FROM (
      -- The register at the end of each local hour: the running maximum, kept within the
      -- session's first and billed registers (a stray reading cannot move energy out of it).
      SELECT session_id, lh, tz, start_mwh,
             max(least(greatest(mwh, start_mwh), end_mwh)) OVER (PARTITION BY session_id ORDER BY lh) AS mwh
      FROM (
        SELECT session_id, lh, tz, start_mwh, end_mwh, max(mwh) AS mwh
        FROM (
          SELECT v.session_id, date_trunc('hour', rd.ts AT TIME ZONE v.tz) AS lh, v.tz, v.start_mwh, v.end_mwh, rd.energy_mwh AS mwh
          FROM vv_rolling v JOIN readings rd ON rd.terminal_id = v.terminal_id AND rd.ts >= v.started_at AND rd.ts <= v.ended_at
          UNION ALL
          -- The session's last hour ends on the billed register.
          SELECT session_id, date_trunc('hour', ended_at AT TIME ZONE tz), tz, start_mwh, end_mwh, end_mwh FROM vv_rolling
        ) marks
        GROUP BY session_id, lh, tz, start_mwh, end_mwh
      ) per_hour
    ) cum
  ) hours
  WHERE mwh > prev;

  UPDATE sessions s SET usage_rolled_at = now() FROM vv_rolling v WHERE s.session_id = v.session_id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
