-- The reports' 100 ms goal (issue 14), second part: the report by user and the package's pending
-- count. Figures in docs/analytics.md.
--
-- usage_user_weekly: bucket (the UTC week of the session's start, from Monday 00:00, as
-- TimescaleDB's time_bucket('7 days') and date_bin from 2000-01-03 both cut it), user_id, then the
-- columns of usage_daily (sessions, fee_cents, energy_mwh, busy_ms, mwh_00 .. mwh_23, bigint). A
-- user has about two sessions a week: a week of it is about 9,000 rows for 10,000 users, against
-- about 24,000 in usage_daily (keyed by terminal too). The report by user and a user's own report
-- read whole weeks from it and the days at either end from usage_daily (control/reports/usage.ts).
--   TimescaleDB: a real-time continuous aggregate over usage_daily (hierarchical: hourly, daily,
--     weekly), with a refresh policy; the roller refreshes its buckets after each rollup. Created
--     WITH NO DATA (a refresh cannot run in a migration's transaction): until its policy's first
--     run, real-time aggregation answers from usage_daily, exact but slower.
--   Plain: table usage_user_weekly_m kept by statement triggers on session_usage, in the rollup's
--     transaction, as the other usage tables are (sql/012, sql/026); filled here from usage_daily_m.

DO $do$
DECLARE
  hour_names text := (SELECT string_agg(format('mwh_%s', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hour_columns text := (SELECT string_agg(format('mwh_%s bigint NOT NULL', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hour_updates text := (SELECT string_agg(format('mwh_%1$s = u.mwh_%1$s + excluded.mwh_%1$s', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hours_of_rows text := (SELECT string_agg(format('sum(CASE WHEN hour_of_day = %s THEN energy_mwh ELSE 0 END)::bigint', h), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hours_of_sums text := (SELECT string_agg(format('sum(mwh_%1$s)::bigint AS mwh_%1$s', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  totals_of_sums text := 'sum(sessions)::bigint AS sessions, sum(fee_cents)::bigint AS fee_cents, sum(energy_mwh)::bigint AS energy_mwh, sum(busy_ms)::bigint AS busy_ms';
  totals_of_rows text := 'sum(sessions)::bigint, sum(fee_cents)::bigint, sum(energy_mwh)::bigint, sum(busy_ms)::bigint';
  week text := $w$date_bin(interval '7 days', started_at, timestamptz '2000-01-03 00:00:00+00')$w$;
  lvl record;
BEGIN
  IF vv_storage_engine() = 'timescaledb' THEN
    EXECUTE format($v$
      CREATE MATERIALIZED VIEW usage_user_weekly WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '7 days', bucket) AS bucket, user_id, %1$s, %2$s
        FROM usage_daily GROUP BY time_bucket(interval '7 days', bucket), user_id WITH NO DATA$v$, totals_of_sums, hours_of_sums);
    -- As the daily ones': no start offset (a session's start can be days back when it is rolled).
    PERFORM add_continuous_aggregate_policy('usage_user_weekly', start_offset => NULL, end_offset => interval '1 day', schedule_interval => interval '1 hour');
  ELSE
    EXECUTE format('CREATE TABLE usage_user_weekly_m (bucket timestamptz NOT NULL, user_id text NOT NULL,
                      sessions bigint NOT NULL, fee_cents bigint NOT NULL, energy_mwh bigint NOT NULL, busy_ms bigint NOT NULL, %s,
                      PRIMARY KEY (bucket, user_id))', hour_columns);
    CREATE INDEX ON usage_user_weekly_m (user_id, bucket);
    EXECUTE format('CREATE VIEW usage_user_weekly AS SELECT bucket, user_id, sessions, fee_cents, energy_mwh, busy_ms, %s FROM usage_user_weekly_m', hour_names);
    FOR lvl IN SELECT * FROM (VALUES ('added', 'INSERT', '', 'vv_added', 'NEW'), ('gone', 'DELETE', '-', 'vv_gone', 'OLD')) AS v(name, event, sign, rel, transition) LOOP
      EXECUTE format($f$
        CREATE FUNCTION vv_usage_user_rollup_%1$s() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
          INSERT INTO usage_user_weekly_m AS u (bucket, user_id, sessions, fee_cents, energy_mwh, busy_ms, %2$s)
          SELECT %3$s, user_id, %4$s
          FROM %5$s GROUP BY 1, user_id ORDER BY 1, user_id
          ON CONFLICT (bucket, user_id) DO UPDATE SET sessions = u.sessions + excluded.sessions, fee_cents = u.fee_cents + excluded.fee_cents,
            energy_mwh = u.energy_mwh + excluded.energy_mwh, busy_ms = u.busy_ms + excluded.busy_ms, %6$s;
          %7$s
          RETURN NULL;
        END $b$$f$, lvl.name, hour_names, week, replace(totals_of_rows || ', ' || hours_of_rows, 'sum(', lvl.sign || 'sum('), lvl.rel, hour_updates,
        -- A week whose sessions are all gone is gone; only the weeks this delete touched are looked at.
        CASE WHEN lvl.name = 'gone' THEN format('DELETE FROM usage_user_weekly_m u USING (SELECT DISTINCT %s AS bucket, user_id FROM vv_gone) g
          WHERE u.sessions = 0 AND u.bucket = g.bucket AND u.user_id = g.user_id;', week) ELSE '' END);
      -- Named to fire after sql/012's and sql/026's triggers (the same order of row locks in every rollup).
      EXECUTE format('CREATE TRIGGER session_usage_user_rollup_%1$s AFTER %2$s ON session_usage REFERENCING %3$s TABLE AS %4$s FOR EACH STATEMENT EXECUTE FUNCTION vv_usage_user_rollup_%1$s()',
                     lvl.name, lvl.event, lvl.transition, lvl.rel);
    END LOOP;
    EXECUTE format($q$INSERT INTO usage_user_weekly_m SELECT date_bin(interval '7 days', bucket, timestamptz '2000-01-03 00:00:00+00'), user_id, %1$s, %2$s
                     FROM usage_daily_m GROUP BY 1, user_id$q$, totals_of_sums, hours_of_sums);
  END IF;
END $do$;

-- A package's pending sessions (control/reports/package.ts): the franchisee's sessions not yet
-- rolled. Without it the count read every session of every franchisee (a scan of the sessions
-- table, whatever the period): most of a 1-day package's time. Only sessions not yet rolled are in
-- it, so it stays small; the predicate is the query's own, for the planner to match.
CREATE INDEX sessions_unrolled_franchisee ON sessions (franchisee_id, (coalesce(started_at, created_at)))
  WHERE usage_rolled_at IS NULL AND state NOT IN ('failed');
