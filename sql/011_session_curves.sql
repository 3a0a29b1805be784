-- Per-session usage curves, for the usage reports (control/reports/usage.ts): a row per rolled
-- session with its energy in each local hour of day (e0..e23, mWh), its fee and its grouping keys.
-- session_usage (sql/008) keeps a session's hours as instants, which insights, packages and the
-- dashboards need; a report of 30 days by user grouped those 200 000 session-hours into 110 000
-- (user, hour) pairs and took 300 ms. From this table it groups 100 000 narrow rows into 10 000
-- users with 24 plain sums (bench/analytics.ts). A plain table on both storage paths.
--
-- The hour columns and the fee are integer, not bigint, because PostgreSQL sums integers in a plain
-- 64-bit state but bigints in a 128-bit one allocated per group, which cost a third of the report's
-- time. A real session stays far below 2^31 in each (2 147 kWh in one hour of day; 21 million yuan).
-- One that does not (a meter that jumped, a session of several days) is split into up to 16 parts,
-- each within the range, that sum to it: part 0 counts the session (`sessions` = 1), the others 0.
-- One past even that (2^35 mWh in an hour of day, or 2^35 cents) keeps its curve in bigints in
-- session_curves_big, which reports add. So no value can fail the rollup, which would hold back
-- every session after it, nor make it write millions of rows.
CREATE TABLE session_curves (
  session_id    text NOT NULL REFERENCES sessions,
  part          integer NOT NULL DEFAULT 0 CHECK (part >= 0),
  sessions      smallint NOT NULL CHECK (sessions IN (0, 1)),
  started_at    timestamptz NOT NULL,
  user_id       text NOT NULL,
  terminal_id   text NOT NULL,
  region_id     text NOT NULL,
  franchisee_id text NOT NULL,
  fee_cents     integer NOT NULL,
  e0  integer NOT NULL DEFAULT 0,
  e1  integer NOT NULL DEFAULT 0,
  e2  integer NOT NULL DEFAULT 0,
  e3  integer NOT NULL DEFAULT 0,
  e4  integer NOT NULL DEFAULT 0,
  e5  integer NOT NULL DEFAULT 0,
  e6  integer NOT NULL DEFAULT 0,
  e7  integer NOT NULL DEFAULT 0,
  e8  integer NOT NULL DEFAULT 0,
  e9  integer NOT NULL DEFAULT 0,
  e10 integer NOT NULL DEFAULT 0,
  e11 integer NOT NULL DEFAULT 0,
  e12 integer NOT NULL DEFAULT 0,
  e13 integer NOT NULL DEFAULT 0,
  e14 integer NOT NULL DEFAULT 0,
  e15 integer NOT NULL DEFAULT 0,
  e16 integer NOT NULL DEFAULT 0,
  e17 integer NOT NULL DEFAULT 0,
  e18 integer NOT NULL DEFAULT 0,
  e19 integer NOT NULL DEFAULT 0,
  e20 integer NOT NULL DEFAULT 0,
  e21 integer NOT NULL DEFAULT 0,
  e22 integer NOT NULL DEFAULT 0,
  e23 integer NOT NULL DEFAULT 0,
  PRIMARY KEY (session_id, part),
  CHECK (least(e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17, e18, e19, e20, e21, e22, e23) >= 0)
);
CREATE INDEX session_curves_started ON session_curves (started_at);
CREATE INDEX session_curves_user ON session_curves (user_id, started_at);
CREATE INDEX session_curves_franchisee ON session_curves (franchisee_id, started_at);

-- The rare sessions too large for 16 integer parts: their 24 hours (mWh) and fee as bigints.
CREATE TABLE session_curves_big (
  session_id    text PRIMARY KEY REFERENCES sessions,
  started_at    timestamptz NOT NULL,
  user_id       text NOT NULL,
  terminal_id   text NOT NULL,
  region_id     text NOT NULL,
  franchisee_id text NOT NULL,
  fee_cents     bigint NOT NULL,
  hours_mwh     bigint[] NOT NULL CHECK (cardinality(hours_mwh) = 24)
);
CREATE INDEX session_curves_big_started ON session_curves_big (started_at);

-- Part p of a value split into integers: v = the sum over p of vv_curve_part(v, p). In bigint
-- throughout (sign() would have gone through double precision, exact here but not money's type).
CREATE FUNCTION vv_curve_part(v bigint, p integer) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
  SELECT (CASE WHEN v < 0 THEN -1 ELSE 1 END * least(greatest(abs(v) - p::bigint * 2147483647, 0), 2147483647))::integer
$$;

-- The curves of the given sessions, from their session_usage hours. An SQL function, planned
-- at each call for the ids it gets: it is called once per statement that marks sessions rolled.
CREATE FUNCTION vv_add_session_curves(ids text[]) RETURNS void
LANGUAGE sql AS $$
  WITH s AS (
    SELECT session_id, min(started_at) AS started_at, min(user_id) AS user_id, min(terminal_id) AS terminal_id,
           min(region_id) AS region_id, min(franchisee_id) AS franchisee_id, sum(fee_cents)::bigint AS fee,
           ARRAY[coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 0), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 1), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 2), 0),
                 coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 3), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 4), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 5), 0),
                 coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 6), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 7), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 8), 0),
                 coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 9), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 10), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 11), 0),
                 coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 12), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 13), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 14), 0),
                 coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 15), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 16), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 17), 0),
                 coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 18), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 19), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 20), 0),
                 coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 21), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 22), 0), coalesce(sum(energy_mwh) FILTER (WHERE hour_of_day = 23), 0)]::bigint[] AS h
    FROM session_usage WHERE session_id = ANY (ids)
    GROUP BY session_id
  ), split AS (
    -- The last part's number: the largest value over 2^31 - 1, rounded up, less one.
    SELECT s.*, ((SELECT max(abs(x)) FROM unnest(s.h || s.fee) x) - 1) / 2147483647 AS last FROM s
  ), big AS (
    INSERT INTO session_curves_big (session_id, started_at, user_id, terminal_id, region_id, franchisee_id, fee_cents, hours_mwh)
    SELECT session_id, started_at, user_id, terminal_id, region_id, franchisee_id, fee, h FROM split WHERE last >= 16
  )
  INSERT INTO session_curves (session_id, part, sessions, started_at, user_id, terminal_id, region_id, franchisee_id, fee_cents, e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17, e18, e19, e20, e21, e22, e23)
  SELECT s.session_id, p, CASE WHEN p = 0 THEN 1 ELSE 0 END, s.started_at, s.user_id, s.terminal_id, s.region_id, s.franchisee_id,
         vv_curve_part(s.fee, p),
         vv_curve_part(s.h[1], p), vv_curve_part(s.h[2], p), vv_curve_part(s.h[3], p), vv_curve_part(s.h[4], p), vv_curve_part(s.h[5], p), vv_curve_part(s.h[6], p),
         vv_curve_part(s.h[7], p), vv_curve_part(s.h[8], p), vv_curve_part(s.h[9], p), vv_curve_part(s.h[10], p), vv_curve_part(s.h[11], p), vv_curve_part(s.h[12], p),
         vv_curve_part(s.h[13], p), vv_curve_part(s.h[14], p), vv_curve_part(s.h[15], p), vv_curve_part(s.h[16], p), vv_curve_part(s.h[17], p), vv_curve_part(s.h[18], p),
         vv_curve_part(s.h[19], p), vv_curve_part(s.h[20], p), vv_curve_part(s.h[21], p), vv_curve_part(s.h[22], p), vv_curve_part(s.h[23], p), vv_curve_part(s.h[24], p)
  FROM split s, generate_series(0, s.last::integer) p
  WHERE s.last < 16
$$;

-- Wherever sessions are marked rolled (vv_roll_session_usage, by this release or by an instance
-- still running the one before during an upgrade), their curves are added in the same
-- transaction. Once per statement, for all the sessions it marked: a trigger per row measured
-- 4 ms a session (each call planned again), and a cached plan can outlive the table's growth.
-- Other updates of sessions find no such row in the transition tables and add nothing.
CREATE FUNCTION vv_sessions_rolled() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  ids text[];
BEGIN
  SELECT array_agg(n.session_id) INTO ids
  FROM vv_new n JOIN vv_old o USING (session_id)
  WHERE o.usage_rolled_at IS NULL AND n.usage_rolled_at IS NOT NULL;
  IF ids IS NOT NULL THEN
    PERFORM vv_add_session_curves(ids);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER sessions_rolled_curves AFTER UPDATE ON sessions
  REFERENCING OLD TABLE AS vv_old NEW TABLE AS vv_new
  FOR EACH STATEMENT EXECUTE FUNCTION vv_sessions_rolled();

-- The sessions rolled before this migration.
SELECT vv_add_session_curves(array_agg(DISTINCT session_id)) FROM session_usage;
