-- Per-session usage curves, for the usage reports (control/reports/usage.ts): one row per rolled
-- session with its energy in each local hour of day (e0..e23, mWh), its fee and its grouping keys.
-- session_usage (sql/008) keeps a session's hours as instants, which insights, packages and the
-- dashboards need; a report of 30 days by user grouped those 200 000 session-hours into 110 000
-- (user, hour) pairs and took 300 ms. From this table it groups 100 000 narrow rows into 10 000
-- users with 24 plain sums (bench/analytics.ts). A plain table on both storage paths.
--
-- The hour columns and the fee are integer, not bigint, because PostgreSQL sums integers in a plain
-- 64-bit state but bigints in a 128-bit one allocated per group, which cost a third of the report's
-- time. Neither can reach 2^31: an hour of one terminal stays far below 2 147 kWh, and a session's
-- fee below 21 million yuan (a 1 MW terminal for a day at 100 yuan/kWh is 2.4 million). A value out
-- of range would fail the rollup, never wrap.
CREATE TABLE session_curves (
  session_id    text PRIMARY KEY REFERENCES sessions,
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
  CHECK (least(e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17, e18, e19, e20, e21, e22, e23) >= 0)
);
CREATE INDEX session_curves_started ON session_curves (started_at);
CREATE INDEX session_curves_user ON session_curves (user_id, started_at);
CREATE INDEX session_curves_franchisee ON session_curves (franchisee_id, started_at);

-- The curves of the given sessions, from their session_usage hours.
CREATE FUNCTION vv_add_session_curves(ids text[]) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO session_curves (session_id, started_at, user_id, terminal_id, region_id, franchisee_id, fee_cents, e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17, e18, e19, e20, e21, e22, e23)
  SELECT u.session_id, min(u.started_at), min(u.user_id), min(u.terminal_id), min(u.region_id), min(u.franchisee_id), sum(u.fee_cents),
         coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 0), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 1), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 2), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 3), 0),
         coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 4), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 5), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 6), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 7), 0),
         coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 8), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 9), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 10), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 11), 0),
         coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 12), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 13), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 14), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 15), 0),
         coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 16), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 17), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 18), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 19), 0),
         coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 20), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 21), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 22), 0), coalesce(sum(u.energy_mwh) FILTER (WHERE u.hour_of_day = 23), 0)
  FROM session_usage u WHERE u.session_id = ANY (ids)
  GROUP BY u.session_id
$$;

-- The sessions rolled before this migration.
SELECT vv_add_session_curves(array_agg(DISTINCT session_id)) FROM session_usage;

-- vv_roll_session_usage (sql/008) and the curves of what it rolled, in one transaction: the
-- sessions it rolled are those it marked in vv_rolling.
CREATE FUNCTION vv_roll_usage(settle_before timestamptz, max_sessions integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  n integer;
BEGIN
  n := vv_roll_session_usage(settle_before, max_sessions);
  IF n > 0 THEN
    PERFORM vv_add_session_curves(array_agg(session_id)) FROM vv_rolling;
  END IF;
  RETURN n;
END $$;
