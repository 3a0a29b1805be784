-- Usage curves as aggregates (issue 14), replacing session_curves (sql/011), which is retired here.
--
-- What the reports need (control/reports/usage.ts): the sessions STARTED in a range, grouped by
-- user, terminal, region or franchisee, each session whole: its fee, its energy, and its energy
-- by local hour of day. So the aggregates bucket session_usage's rows by the session's start, keyed
-- by all four keys (a region's or a franchisee's report sums the same rows), and carry the 24
-- hours of day as columns mwh_00 .. mwh_23: a report is then a sum of 24 columns per group, one
-- row back per group. All the hours of a session share its start, so each session is whole in
-- exactly one bucket.
--
-- One set of names on both storage paths: usage_hourly (by hour of start) and usage_daily (by UTC
-- day of start), with the columns
--   bucket, user_id, terminal_id, region_id, franchisee_id,
--   sessions, fee_cents, energy_mwh, busy_ms, mwh_00 .. mwh_23   (all bigint)
--   TimescaleDB: session_usage becomes a hypertable (by started_at); usage_hourly is a real-time
--     continuous aggregate over it and usage_daily one over usage_hourly (hierarchical), each with
--     a refresh policy. The roller also refreshes the buckets of the sessions it rolled
--     (control/reports/roller.ts), so a session that started before the watermark counts at once.
--   Plain: tables usage_hourly_m and usage_daily_m, kept exact by statement triggers on
--     session_usage (the rollup's own transaction), and views usage_hourly / usage_daily over them.
--
-- Exactness: every value is a bigint sum of integers. Numbers are bounded at the wire
-- (contracts/bounds.ts: a register below 10^15 mWh), so the parts and the bigint overflow table of
-- sql/011 are no longer needed.

DROP TRIGGER sessions_rolled_curves ON sessions;
DROP FUNCTION vv_sessions_rolled();
DROP FUNCTION vv_add_session_curves(text[]);
DROP FUNCTION vv_curve_part(bigint, integer);
DROP TABLE session_curves;
DROP TABLE session_curves_big;

-- sum() of bigint keeps a 128-bit state per group and returns numeric; this one adds in a plain
-- 64-bit value and fails on overflow ("bigint out of range") rather than wrap. The reports use it
-- over the aggregates: 10 000 groups of 24 sums each (measured about twice as fast as sum()).
CREATE AGGREGATE vv_sum(bigint) (sfunc = int8pl, stype = bigint, combinefunc = int8pl, initcond = '0', parallel = safe);

DO $do$
DECLARE
  -- The 24 hours of day, from session_usage rows, and re-summed from a level below.
  hours_of_rows text := (SELECT string_agg(format('sum(CASE WHEN hour_of_day = %s THEN energy_mwh ELSE 0 END)::bigint AS mwh_%s', h, lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hours_of_sums text := (SELECT string_agg(format('sum(mwh_%1$s)::bigint AS mwh_%1$s', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hour_names text := (SELECT string_agg(format('mwh_%s', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hour_columns text := (SELECT string_agg(format('mwh_%s bigint NOT NULL', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  hour_updates text := (SELECT string_agg(format('mwh_%1$s = u.mwh_%1$s + excluded.mwh_%1$s', lpad(h::text, 2, '0')), ', ' ORDER BY h) FROM generate_series(0, 23) h);
  keys text := 'user_id, terminal_id, region_id, franchisee_id';
  totals_of_rows text := 'sum(sessions)::bigint AS sessions, sum(fee_cents)::bigint AS fee_cents, sum(energy_mwh)::bigint AS energy_mwh, sum(busy_ms)::bigint AS busy_ms';
  totals_of_sums text := 'sum(sessions)::bigint AS sessions, sum(fee_cents)::bigint AS fee_cents, sum(energy_mwh)::bigint AS energy_mwh, sum(busy_ms)::bigint AS busy_ms';
  lvl record;
BEGIN
  IF vv_storage_engine() = 'timescaledb' THEN
    -- A hypertable's unique keys hold its time column; a session's start is one value per session,
    -- so (session_id, hour_start) stays unique.
    ALTER TABLE session_usage DROP CONSTRAINT session_usage_pkey;
    ALTER TABLE session_usage ADD PRIMARY KEY (session_id, hour_start, started_at);
    PERFORM create_hypertable('session_usage', 'started_at', chunk_time_interval => interval '7 days',
                              create_default_indexes => false, migrate_data => true);
    EXECUTE format($v$
      CREATE MATERIALIZED VIEW usage_hourly WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 hour', started_at) AS bucket, %1$s, %2$s, %3$s
        FROM session_usage GROUP BY time_bucket(interval '1 hour', started_at), %1$s WITH NO DATA$v$, keys, totals_of_rows, hours_of_rows);
    EXECUTE format($v$
      CREATE MATERIALIZED VIEW usage_daily WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 day', bucket) AS bucket, %1$s, %2$s, %3$s
        FROM usage_hourly GROUP BY time_bucket(interval '1 day', bucket), %1$s WITH NO DATA$v$, keys, totals_of_sums, hours_of_sums);
    -- No start offset: a session is rolled when it is over, so its start can be hours or days back;
    -- each run refreshes what was invalidated since, however old, and nothing else.
    PERFORM add_continuous_aggregate_policy('usage_hourly', start_offset => NULL, end_offset => interval '1 hour', schedule_interval => interval '10 minutes');
    PERFORM add_continuous_aggregate_policy('usage_daily', start_offset => NULL, end_offset => interval '1 day', schedule_interval => interval '1 hour');
  ELSE
    FOR lvl IN SELECT * FROM (VALUES ('hourly', '1 hour'), ('daily', '1 day')) AS v(name, width) LOOP
      EXECUTE format('CREATE TABLE usage_%s_m (bucket timestamptz NOT NULL, user_id text NOT NULL, terminal_id text NOT NULL, region_id text NOT NULL,
                        franchisee_id text NOT NULL, sessions bigint NOT NULL, fee_cents bigint NOT NULL, energy_mwh bigint NOT NULL, busy_ms bigint NOT NULL, %s,
                        PRIMARY KEY (bucket, %s))', lvl.name, hour_columns, keys);
      -- As TimescaleDB indexes a continuous aggregate: each key with the bucket.
      EXECUTE format('CREATE INDEX ON usage_%s_m (user_id, bucket)', lvl.name);
      EXECUTE format('CREATE INDEX ON usage_%s_m (terminal_id, bucket)', lvl.name);
      EXECUTE format('CREATE INDEX ON usage_%s_m (franchisee_id, bucket)', lvl.name);
      EXECUTE format('CREATE VIEW usage_%1$s AS SELECT bucket, %2$s, sessions, fee_cents, energy_mwh, busy_ms, %3$s FROM usage_%1$s_m', lvl.name, keys, hour_names);
    END LOOP;
    -- Kept by statement triggers on session_usage: whoever writes the facts (the rollup, an
    -- operator rolling a session again) keeps both tables exact in the same transaction. Rows
    -- are added (or taken away) in the order of the keys, so that two rollups at once lock the
    -- rows they share in one order.
    FOR lvl IN SELECT * FROM (VALUES ('added', 'INSERT', '', 'vv_added', 'NEW'), ('gone', 'DELETE', '-', 'vv_gone', 'OLD')) AS v(name, event, sign, rel, transition) LOOP
      EXECUTE format($f$
        CREATE FUNCTION vv_usage_rollup_%1$s() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
          %2$s
          %3$s
          RETURN NULL;
        END $b$$f$, lvl.name,
        (SELECT string_agg(format($q$
          INSERT INTO usage_%1$s_m AS u (bucket, %2$s, sessions, fee_cents, energy_mwh, busy_ms, %3$s)
          SELECT date_bin(interval '%4$s', started_at, timestamptz 'epoch'), %2$s, %5$s
          FROM %6$s GROUP BY 1, %2$s ORDER BY 1, %2$s
          ON CONFLICT (bucket, %2$s) DO UPDATE SET sessions = u.sessions + excluded.sessions, fee_cents = u.fee_cents + excluded.fee_cents,
            energy_mwh = u.energy_mwh + excluded.energy_mwh, busy_ms = u.busy_ms + excluded.busy_ms, %7$s;$q$,
          l.name, keys, hour_names, l.width, replace(totals_of_rows || ', ' || hours_of_rows, 'sum(', lvl.sign || 'sum('), lvl.rel, hour_updates), E'\n' ORDER BY l.o)
         FROM (VALUES (1, 'hourly', '1 hour'), (2, 'daily', '1 day')) AS l(o, name, width)),
        -- A bucket whose sessions are all gone is gone (each session counts 1, in its start's bucket).
        CASE WHEN lvl.name = 'gone' THEN 'DELETE FROM usage_hourly_m WHERE sessions = 0; DELETE FROM usage_daily_m WHERE sessions = 0;' ELSE '' END);
      EXECUTE format('CREATE TRIGGER session_usage_rollup_%1$s AFTER %2$s ON session_usage REFERENCING %3$s TABLE AS %4$s FOR EACH STATEMENT EXECUTE FUNCTION vv_usage_rollup_%1$s()',
                     lvl.name, lvl.event, lvl.transition, lvl.rel);
    END LOOP;
    -- The sessions rolled before this migration.
    EXECUTE format('INSERT INTO usage_hourly_m SELECT date_bin(interval ''1 hour'', started_at, timestamptz ''epoch''), %1$s, %2$s, %3$s FROM session_usage GROUP BY 1, %1$s',
                   keys, totals_of_rows, hours_of_rows);
    EXECUTE format('INSERT INTO usage_daily_m SELECT date_bin(interval ''1 day'', bucket, timestamptz ''epoch''), %1$s, %2$s, %3$s FROM usage_hourly_m GROUP BY 1, %1$s',
                   keys, totals_of_sums, hours_of_sums);
  END IF;
END $do$;

-- The rollup of sql/008, and the span of the rolled sessions' starts: the roller refreshes the
-- continuous aggregates' buckets over it (TimescaleDB; a refresh cannot run inside a function).
CREATE FUNCTION vv_roll_usage(settle_before timestamptz, max_sessions integer,
                              OUT rolled integer, OUT first_start timestamptz, OUT last_start timestamptz, OUT refresh boolean)
LANGUAGE plpgsql AS $$
BEGIN
  rolled := vv_roll_session_usage(settle_before, max_sessions);
  -- vv_rolling: the sessions this transaction rolled (a temporary table of sql/008's function).
  SELECT min(started_at), max(started_at) INTO first_start, last_start FROM vv_rolling;
  refresh := vv_storage_engine() = 'timescaledb' AND rolled > 0;
END $$;
