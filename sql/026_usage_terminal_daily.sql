-- A daily usage aggregate keyed by terminal (issue 14: the reports' 100 ms goal).
--
-- usage_daily (sql/012) is keyed by user, terminal, region and franchisee; a user has about 0.3
-- sessions a day, so a day's bucket holds about one row per session, and every whole-fleet report
-- summed about 100,000 rows of 26 columns for 30 days whatever it grouped by. A terminal has one
-- region and one franchisee, so the reports by terminal, region and franchisee (and the
-- franchisee packages) can read the same sums with the user folded away: about 1,000 rows a day.
--
-- usage_terminal_daily: bucket (UTC day of the session's start), terminal_id, region_id,
-- franchisee_id, then the columns of usage_daily (sessions, fee_cents, energy_mwh, busy_ms,
-- mwh_00 .. mwh_23, all bigint). Region and franchisee are keys, not attributes looked up later:
-- a session keeps the franchisee it was recorded with, and a terminal moved to another franchisee
-- keeps its earlier sessions under the earlier one (as usage_daily does).
--   TimescaleDB: a real-time continuous aggregate over usage_hourly (hierarchical, beside
--     usage_daily), with a refresh policy like usage_daily's; the roller refreshes its buckets
--     after each rollup (control/reports/roller.ts). Created WITH NO DATA (a refresh cannot run in
--     a migration's transaction): until its policy's first run, real-time aggregation answers from
--     usage_hourly, exact but slower.
--   Plain: table usage_terminal_daily_m kept by statement triggers on session_usage, as
--     usage_daily_m is (sql/012), in the same transaction; filled here from usage_daily_m.

DO $do$
DECLARE
  hour_names text := (SELECT string_agg(format('mwh_%s', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hour_columns text := (SELECT string_agg(format('mwh_%s bigint NOT NULL', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hour_updates text := (SELECT string_agg(format('mwh_%1$s = u.mwh_%1$s + excluded.mwh_%1$s', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hours_of_rows text := (SELECT string_agg(format('sum(CASE WHEN hour_of_day = %s THEN energy_mwh ELSE 0 END)::bigint', h), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hours_of_sums text := (SELECT string_agg(format('sum(mwh_%1$s)::bigint AS mwh_%1$s', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  totals_of_sums text := 'sum(sessions)::bigint AS sessions, sum(fee_cents)::bigint AS fee_cents, sum(energy_mwh)::bigint AS energy_mwh, sum(busy_ms)::bigint AS busy_ms';
  totals_of_rows text := 'sum(sessions)::bigint, sum(fee_cents)::bigint, sum(energy_mwh)::bigint, sum(busy_ms)::bigint';
  keys text := 'terminal_id, region_id, franchisee_id';
  lvl record;
BEGIN
  IF vv_storage_engine() = 'timescaledb' THEN
    EXECUTE format($v$
      CREATE MATERIALIZED VIEW usage_terminal_daily WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 day', bucket) AS bucket, %1$s, %2$s, %3$s
        FROM usage_hourly GROUP BY time_bucket(interval '1 day', bucket), %1$s WITH NO DATA$v$, keys, totals_of_sums, hours_of_sums);
    -- As usage_daily's: no start offset (a session is rolled when it is over, its start can be
    -- days back; each run refreshes what was invalidated since, however old).
    PERFORM add_continuous_aggregate_policy('usage_terminal_daily', start_offset => NULL, end_offset => interval '1 day', schedule_interval => interval '1 hour');
  ELSE
    EXECUTE format('CREATE TABLE usage_terminal_daily_m (bucket timestamptz NOT NULL, terminal_id text NOT NULL, region_id text NOT NULL,
                      franchisee_id text NOT NULL, sessions bigint NOT NULL, fee_cents bigint NOT NULL, energy_mwh bigint NOT NULL, busy_ms bigint NOT NULL, %s,
                      PRIMARY KEY (bucket, %s))', hour_columns, keys);
    CREATE INDEX ON usage_terminal_daily_m (terminal_id, bucket);
    CREATE INDEX ON usage_terminal_daily_m (region_id, bucket);
    CREATE INDEX ON usage_terminal_daily_m (franchisee_id, bucket);
    EXECUTE format('CREATE VIEW usage_terminal_daily AS SELECT bucket, %1$s, sessions, fee_cents, energy_mwh, busy_ms, %2$s FROM usage_terminal_daily_m', keys, hour_names);
    -- Statement triggers beside sql/012's (which fire first, by name: the same order of row locks
    -- in every rollup), rows added or taken away in key order.
    FOR lvl IN SELECT * FROM (VALUES ('added', 'INSERT', '', 'vv_added', 'NEW'), ('gone', 'DELETE', '-', 'vv_gone', 'OLD')) AS v(name, event, sign, rel, transition) LOOP
      EXECUTE format($f$
        CREATE FUNCTION vv_usage_terminal_rollup_%1$s() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
          INSERT INTO usage_terminal_daily_m AS u (bucket, %2$s, sessions, fee_cents, energy_mwh, busy_ms, %3$s)
          SELECT date_bin(interval '1 day', started_at, timestamptz 'epoch'), %2$s, %4$s
          FROM %5$s GROUP BY 1, %2$s ORDER BY 1, %2$s
          ON CONFLICT (bucket, %2$s) DO UPDATE SET sessions = u.sessions + excluded.sessions, fee_cents = u.fee_cents + excluded.fee_cents,
            energy_mwh = u.energy_mwh + excluded.energy_mwh, busy_ms = u.busy_ms + excluded.busy_ms, %6$s;
          %7$s
          RETURN NULL;
        END $b$$f$, lvl.name, keys, hour_names, replace(totals_of_rows || ', ' || hours_of_rows, 'sum(', lvl.sign || 'sum('), lvl.rel, hour_updates,
        -- A bucket whose sessions are all gone is gone (each session counts 1, in its start's
        -- bucket); only the buckets this delete touched are looked at.
        CASE WHEN lvl.name = 'gone' THEN format('DELETE FROM usage_terminal_daily_m u USING (SELECT DISTINCT date_bin(interval ''1 day'', started_at, timestamptz ''epoch'') AS bucket, %1$s FROM vv_gone) g
          WHERE u.sessions = 0 AND u.bucket = g.bucket AND u.terminal_id = g.terminal_id AND u.region_id = g.region_id AND u.franchisee_id = g.franchisee_id;', keys) ELSE '' END);
      EXECUTE format('CREATE TRIGGER session_usage_terminal_rollup_%1$s AFTER %2$s ON session_usage REFERENCING %3$s TABLE AS %4$s FOR EACH STATEMENT EXECUTE FUNCTION vv_usage_terminal_rollup_%1$s()',
                     lvl.name, lvl.event, lvl.transition, lvl.rel);
    END LOOP;
    -- The sessions rolled before this migration.
    EXECUTE format('INSERT INTO usage_terminal_daily_m SELECT bucket, %1$s, %2$s, %3$s FROM usage_daily_m GROUP BY bucket, %1$s', keys, totals_of_sums, hours_of_sums);
  END IF;
END $do$;
