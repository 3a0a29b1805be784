-- Telemetry aggregates per terminal: per minute, rolled up per hour and per day (UTC buckets).
-- What they answer: how busy a terminal was (the share of its readings with the relay on, which
-- does not depend on how often it reports), its power, and its register's range. Utilisation
-- curves, insights and dashboards read them (control/reports/, dashboards/).
--
-- Two paths, one set of names (telemetry_minute, telemetry_hour, telemetry_day):
--   TimescaleDB: hierarchical continuous aggregates, real-time (materialized_only = false), with
--   refresh policies (ingest/storage.ts also refreshes them by hand, see docs/analytics.md).
--   Plain: tables *_m kept by vv_refresh_telemetry(), and views that add the not yet materialized
--   tail from the level below, the way real-time aggregates do.

CREATE TABLE vv_rollup_watermarks (
  name text PRIMARY KEY,
  upto timestamptz NOT NULL
);

DO $$
DECLARE
  levels text[][] := ARRAY[['minute', '1 minute'], ['hour', '1 hour'], ['day', '1 day']];
BEGIN
  IF vv_storage_engine() = 'timescaledb' THEN
    CREATE MATERIALIZED VIEW telemetry_minute WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
      SELECT terminal_id, time_bucket(interval '1 minute', ts) AS bucket,
             count(*) AS readings, sum(CASE WHEN relay_on THEN 1 ELSE 0 END) AS on_readings,
             min(energy_mwh) AS min_mwh, max(energy_mwh) AS max_mwh,
             max(power_w) AS max_power_w, sum(power_w) AS sum_power_w
      FROM readings GROUP BY terminal_id, time_bucket(interval '1 minute', ts) WITH NO DATA;
    CREATE MATERIALIZED VIEW telemetry_hour WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
      SELECT terminal_id, time_bucket(interval '1 hour', bucket) AS bucket,
             sum(readings) AS readings, sum(on_readings) AS on_readings, min(min_mwh) AS min_mwh, max(max_mwh) AS max_mwh,
             max(max_power_w) AS max_power_w, sum(sum_power_w) AS sum_power_w
      FROM telemetry_minute GROUP BY terminal_id, time_bucket(interval '1 hour', bucket) WITH NO DATA;
    CREATE MATERIALIZED VIEW telemetry_day WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
      SELECT terminal_id, time_bucket(interval '1 day', bucket) AS bucket,
             sum(readings) AS readings, sum(on_readings) AS on_readings, min(min_mwh) AS min_mwh, max(max_mwh) AS max_mwh,
             max(max_power_w) AS max_power_w, sum(sum_power_w) AS sum_power_w
      FROM telemetry_hour GROUP BY terminal_id, time_bucket(interval '1 day', bucket) WITH NO DATA;
    PERFORM add_continuous_aggregate_policy('telemetry_minute', start_offset => interval '3 hours', end_offset => interval '1 minute', schedule_interval => interval '1 minute');
    PERFORM add_continuous_aggregate_policy('telemetry_hour', start_offset => interval '3 days', end_offset => interval '1 hour', schedule_interval => interval '10 minutes');
    PERFORM add_continuous_aggregate_policy('telemetry_day', start_offset => interval '30 days', end_offset => interval '1 day', schedule_interval => interval '1 hour');
  ELSE
    FOR i IN 1 .. array_length(levels, 1) LOOP
      EXECUTE format($f$
        CREATE TABLE telemetry_%1$s_m (
          terminal_id text NOT NULL, bucket timestamptz NOT NULL,
          readings bigint NOT NULL, on_readings bigint NOT NULL, min_mwh bigint NOT NULL, max_mwh bigint NOT NULL,
          max_power_w real NOT NULL, sum_power_w double precision NOT NULL,
          PRIMARY KEY (terminal_id, bucket))$f$, levels[i][1]);
      EXECUTE format('CREATE INDEX ON telemetry_%1$s_m (bucket)', levels[i][1]);
      INSERT INTO vv_rollup_watermarks VALUES ('telemetry_' || levels[i][1], '-infinity');
    END LOOP;
    -- Minute: materialized rows below the watermark, the readings above it aggregated on the fly.
    CREATE VIEW telemetry_minute AS
      SELECT terminal_id, bucket, readings, on_readings, min_mwh, max_mwh, max_power_w, sum_power_w FROM telemetry_minute_m
      WHERE bucket < (SELECT upto FROM vv_rollup_watermarks WHERE name = 'telemetry_minute')
      UNION ALL
      -- (Sums cast back to the materialized columns' types: one type per column across the union.)
      SELECT terminal_id, date_bin(interval '1 minute', ts, timestamptz 'epoch'), count(*), sum(CASE WHEN relay_on THEN 1 ELSE 0 END)::bigint,
             min(energy_mwh), max(energy_mwh), max(power_w), sum(power_w)::float8
      FROM readings WHERE ts >= (SELECT upto FROM vv_rollup_watermarks WHERE name = 'telemetry_minute')
      GROUP BY 1, 2;
    CREATE VIEW telemetry_hour AS
      SELECT terminal_id, bucket, readings, on_readings, min_mwh, max_mwh, max_power_w, sum_power_w FROM telemetry_hour_m
      WHERE bucket < (SELECT upto FROM vv_rollup_watermarks WHERE name = 'telemetry_hour')
      UNION ALL
      SELECT terminal_id, date_bin(interval '1 hour', bucket, timestamptz 'epoch'), sum(readings)::bigint, sum(on_readings)::bigint,
             min(min_mwh), max(max_mwh), max(max_power_w), sum(sum_power_w)
      FROM telemetry_minute WHERE bucket >= (SELECT upto FROM vv_rollup_watermarks WHERE name = 'telemetry_hour')
      GROUP BY 1, 2;
    CREATE VIEW telemetry_day AS
      SELECT terminal_id, bucket, readings, on_readings, min_mwh, max_mwh, max_power_w, sum_power_w FROM telemetry_day_m
      WHERE bucket < (SELECT upto FROM vv_rollup_watermarks WHERE name = 'telemetry_day')
      UNION ALL
      SELECT terminal_id, date_bin(interval '1 day', bucket, timestamptz 'epoch'), sum(readings)::bigint, sum(on_readings)::bigint,
             min(min_mwh), max(max_mwh), max(max_power_w), sum(sum_power_w)
      FROM telemetry_hour WHERE bucket >= (SELECT upto FROM vv_rollup_watermarks WHERE name = 'telemetry_day')
      GROUP BY 1, 2;
  END IF;
END $$;

-- Brings the aggregates up to `upto` (whole buckets before it). Plain: each level is recomputed
-- from the level below for its buckets from `since` (or from its watermark, if that is earlier)
-- up to `upto`, then its watermark moves. The writer passes the time of the oldest reading it
-- stored since its last refresh, so a late reading is counted however late it came.
-- TimescaleDB: refresh_continuous_aggregate cannot run inside a function's transaction, so
-- ingest/storage.ts calls it; this returns 0.
CREATE FUNCTION vv_refresh_telemetry(upto timestamptz, since timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  lvl record;
  lo timestamptz;
  hi timestamptz;
  n integer := 0;
  k integer;
BEGIN
  IF vv_storage_engine() <> 'plain' THEN RETURN 0; END IF;
  FOR lvl IN SELECT * FROM (VALUES (1, 'minute', interval '1 minute', 'readings'), (2, 'hour', interval '1 hour', 'minute'), (3, 'day', interval '1 day', 'hour')) AS v(o, name, width, source) ORDER BY o LOOP
    SELECT w.upto INTO lo FROM vv_rollup_watermarks w WHERE w.name = 'telemetry_' || lvl.name FOR UPDATE;
    hi := date_bin(lvl.width, upto, timestamptz 'epoch');
    IF lo = '-infinity' THEN
      lo := (SELECT date_bin(lvl.width, min(ts), timestamptz 'epoch') FROM readings);
      IF lo IS NULL THEN CONTINUE; END IF;
    ELSE
      lo := date_bin(lvl.width, least(lo, since), timestamptz 'epoch');
    END IF;
    IF lo >= hi THEN CONTINUE; END IF;
    EXECUTE format('DELETE FROM telemetry_%s_m WHERE bucket >= $1 AND bucket < $2', lvl.name) USING lo, hi;
    IF lvl.source = 'readings' THEN
      INSERT INTO telemetry_minute_m
        SELECT terminal_id, date_bin(interval '1 minute', ts, timestamptz 'epoch'), count(*), sum(CASE WHEN relay_on THEN 1 ELSE 0 END),
               min(energy_mwh), max(energy_mwh), max(power_w), sum(power_w)
        FROM readings WHERE ts >= lo AND ts < hi GROUP BY 1, 2;
    ELSE
      EXECUTE format($f$
        INSERT INTO telemetry_%1$s_m
          SELECT terminal_id, date_bin($3, bucket, timestamptz 'epoch'), sum(readings), sum(on_readings), min(min_mwh), max(max_mwh),
                 max(max_power_w), sum(sum_power_w)
          FROM telemetry_%2$s_m WHERE bucket >= $1 AND bucket < $2 GROUP BY 1, 2$f$, lvl.name, lvl.source) USING lo, hi, lvl.width;
    END IF;
    GET DIAGNOSTICS k = ROW_COUNT;
    n := n + k;
    UPDATE vv_rollup_watermarks SET upto = greatest(vv_rollup_watermarks.upto, hi) WHERE name = 'telemetry_' || lvl.name;
  END LOOP;
  RETURN n;
END $$;
