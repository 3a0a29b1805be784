-- Telemetry storage, two paths behind one table name. With the TimescaleDB extension available
-- and preloaded (and voltvend.storage not 'plain'): a hypertable with compression by terminal.
-- Otherwise: declarative range partitioning by UTC day, partitions made ahead and dropped by the
-- platform (vv_ensure_reading_partitions / vv_drop_reading_partitions_before). Retention and
-- compression policies are applied at start by ingest/storage.ts, from the configuration.
-- Everything above this file uses the table `readings` only.

CREATE TABLE vv_storage (
  engine     text NOT NULL CHECK (engine IN ('timescaledb', 'plain')),
  decided_at timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
  wanted    text := coalesce(nullif(current_setting('voltvend.storage', true), ''), 'auto');
  available boolean := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb');
  preloaded boolean := coalesce(current_setting('shared_preload_libraries', true), '') LIKE '%timescaledb%';
  -- One column list for both paths.
  columns   text := $cols$
      terminal_id text NOT NULL,
      ts          timestamptz NOT NULL,
      gateway_id  text NOT NULL,
      seq         bigint NOT NULL,
      relay_on    boolean NOT NULL,
      current_a   real NOT NULL,
      voltage_v   real NOT NULL,
      power_w     real NOT NULL,
      energy_mwh  bigint NOT NULL,
      session_id  text,
      received_at timestamptz NOT NULL,
      -- When the row was written: stored_at - received_at is the ingest lag (measured, monitored).
      stored_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
      PRIMARY KEY (terminal_id, ts)
  $cols$;
BEGIN
  IF wanted NOT IN ('auto', 'timescaledb', 'plain') THEN
    RAISE EXCEPTION 'voltvend.storage must be auto, timescaledb or plain, not %', wanted;
  END IF;
  IF wanted = 'timescaledb' AND NOT (available AND preloaded) THEN
    RAISE EXCEPTION 'VEND_STORAGE=timescaledb, but the extension is not installed and preloaded (shared_preload_libraries)';
  END IF;

  IF wanted <> 'plain' AND available AND preloaded THEN
    CREATE EXTENSION IF NOT EXISTS timescaledb;
    EXECUTE format('CREATE TABLE readings (%s)', columns);
    PERFORM create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
    ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'terminal_id',
                              timescaledb.compress_orderby = 'ts');
    INSERT INTO vv_storage (engine) VALUES ('timescaledb');
  ELSE
    EXECUTE format('CREATE TABLE readings (%s) PARTITION BY RANGE (ts)', columns);
    -- Catches readings outside the days made so far (late or early); moved out when their day is made.
    CREATE TABLE readings_default PARTITION OF readings DEFAULT;
    INSERT INTO vv_storage (engine) VALUES ('plain');
  END IF;
END $$;

CREATE FUNCTION vv_storage_engine() RETURNS text
  LANGUAGE sql STABLE AS $$ SELECT engine FROM vv_storage LIMIT 1 $$;

-- Plain path: one partition per UTC day from from_day to to_day inclusive. Rows of such a day
-- that wait in the default partition are moved into the new partition.
CREATE FUNCTION vv_ensure_reading_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  d date;
  made integer := 0;
  part text;
  lo timestamptz;
  hi timestamptz;
BEGIN
  IF vv_storage_engine() <> 'plain' THEN RETURN 0; END IF;
  d := from_day;
  WHILE d <= to_day LOOP
    part := 'readings_p' || to_char(d, 'YYYYMMDD');
    IF to_regclass(part) IS NULL THEN
      lo := (d::text || ' 00:00:00+00')::timestamptz;
      hi := ((d + 1)::text || ' 00:00:00+00')::timestamptz;
      CREATE TEMP TABLE IF NOT EXISTS vv_moving (LIKE readings) ON COMMIT DROP;
      WITH moved AS (DELETE FROM readings_default WHERE ts >= lo AND ts < hi RETURNING *)
        INSERT INTO vv_moving SELECT * FROM moved;
      EXECUTE format('CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
      INSERT INTO readings SELECT * FROM vv_moving;
      DELETE FROM vv_moving;
      made := made + 1;
    END IF;
    d := d + 1;
  END LOOP;
  RETURN made;
END $$;

-- Plain path: drops the day partitions that end before `day` (retention).
CREATE FUNCTION vv_drop_reading_partitions_before(day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  dropped integer := 0;
BEGIN
  IF vv_storage_engine() <> 'plain' THEN RETURN 0; END IF;
  FOR r IN
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'readings'::regclass AND c.relname ~ '^readings_p\d{8}$'
      AND to_date(substring(c.relname from 11), 'YYYYMMDD') < day
  LOOP
    EXECUTE format('DROP TABLE %I', r.relname);
    dropped := dropped + 1;
  END LOOP;
  DELETE FROM readings_default WHERE ts < (day::text || ' 00:00:00+00')::timestamptz;
  RETURN dropped;
END $$;
