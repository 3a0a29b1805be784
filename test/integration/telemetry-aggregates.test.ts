import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { refreshAggregates } from "../../ingest/index.ts";
import { timescaleAvailable } from "../helpers/database.ts";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { policyJob, policyRuns } from "../helpers/timescale.ts";

// The telemetry aggregates answer the same on both storage paths: per minute, hour and day, from
// what is materialized plus the readings not yet refreshed (real-time), late readings included.
const hasTimescale = await timescaleAvailable("the telemetry aggregates on the TimescaleDB path");

const MIN = 60_000;
const HOUR = 60 * MIN;
// Two whole UTC days back, on an hour boundary.
const T0 = Math.floor(Date.now() / (24 * HOUR)) * 24 * HOUR - 2 * 24 * HOUR;

interface Row {
  terminal_id: string;
  bucket: number;
  readings: number;
  on_readings: number;
  min_mwh: number;
  max_mwh: number;
}

function suite(engine: "plain" | "timescaledb") {
  let tp: TestPlatform;
  const insert = (terminal: string, ts: number[], on: (ts: number) => boolean, mwh: (ts: number) => number) =>
    tp.p.db.query(
      `INSERT INTO readings (terminal_id, ts, gateway_id, seq, relay_on, current_a, voltage_v, power_w, energy_mwh, received_at)
       SELECT $1, vv_ms_to_ts(t), 'G1', 0, o, 0, 220, CASE WHEN o THEN 3600 ELSE 0 END, e, vv_ms_to_ts(t)
       FROM unnest($2::bigint[], $3::boolean[], $4::bigint[]) AS u(t, o, e)`,
      [terminal, ts, ts.map(on), ts.map(mwh)],
    );
  const view = async (name: string, from: number, to: number): Promise<Row[]> =>
    (
      await tp.p.db.query(
        `SELECT terminal_id, vv_ts_to_ms(bucket)::float8 AS bucket, readings::int, on_readings::int, min_mwh::int, max_mwh::int
         FROM ${name} WHERE bucket >= vv_ms_to_ts($1::bigint) AND bucket < vv_ms_to_ts($2::bigint) ORDER BY terminal_id, bucket`,
        [from, to],
      )
    ).rows;

  beforeAll(async () => {
    tp = await testPlatform({ VEND_STORAGE: engine }, { parts: { cutoff: false, faults: false, writer: false } });
    await seedFleet(tp, { terminals: ["T1", "T2"] });
    // T1: a reading every 10 s for three hours, the relay on in the second hour only.
    const ts = Array.from({ length: 3 * 360 }, (_, i) => T0 + i * 10_000);
    await insert("T1", ts, (t) => t >= T0 + HOUR && t < T0 + 2 * HOUR, (t) => 1_000_000 + Math.max(0, Math.min(t, T0 + 2 * HOUR) - (T0 + HOUR)) / 1000);
    // T2: one reading a minute for the first hour, always on.
    await insert("T2", Array.from({ length: 60 }, (_, i) => T0 + i * MIN), () => true, (t) => (t - T0) / 100);
  });
  afterAll(async () => {
    await tp?.[Symbol.asyncDispose]();
  });

  it(`runs on the ${engine} path`, async () => {
    expect((await tp.p.db.query("SELECT vv_storage_engine() AS e")).rows[0].e).toBe(engine);
    if (engine === "timescaledb") {
      const c = await tp.p.db.query("SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates WHERE view_name LIKE 'telemetry\\_%' ORDER BY view_name");
      expect(c.rows).toEqual(["telemetry_day", "telemetry_hour", "telemetry_minute"].map((view_name) => ({ view_name, materialized_only: false })));
      const jobs = await tp.p.db.query("SELECT count(*)::int AS n FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_name LIKE 'telemetry\\_%'");
      expect(jobs.rows[0].n).toBe(3);
    }
  });

  for (const refreshed of [false, true]) {
    it(`per hour and day, the same ${refreshed ? "after a refresh" : "before any refresh (real-time)"}`, async () => {
      if (refreshed) await refreshAggregates(tp.p.db, Date.now());
      expect(await view("telemetry_hour", T0, T0 + 3 * HOUR)).toEqual([
        { terminal_id: "T1", bucket: T0, readings: 360, on_readings: 0, min_mwh: 1_000_000, max_mwh: 1_000_000 },
        { terminal_id: "T1", bucket: T0 + HOUR, readings: 360, on_readings: 360, min_mwh: 1_000_000, max_mwh: 1_003_590 },
        { terminal_id: "T1", bucket: T0 + 2 * HOUR, readings: 360, on_readings: 0, min_mwh: 1_003_600, max_mwh: 1_003_600 },
        { terminal_id: "T2", bucket: T0, readings: 60, on_readings: 60, min_mwh: 0, max_mwh: 35_400 },
      ]);
      expect(await view("telemetry_day", T0, T0 + 24 * HOUR)).toEqual([
        { terminal_id: "T1", bucket: T0, readings: 1080, on_readings: 360, min_mwh: 1_000_000, max_mwh: 1_003_600 },
        { terminal_id: "T2", bucket: T0, readings: 60, on_readings: 60, min_mwh: 0, max_mwh: 35_400 },
      ]);
      const minutes = await view("telemetry_minute", T0 + HOUR, T0 + HOUR + 2 * MIN);
      expect(minutes.map((m) => [m.terminal_id, m.readings, m.on_readings])).toEqual([
        ["T1", 6, 6],
        ["T1", 6, 6],
      ]);
    });
  }

  if (engine === "timescaledb")
    it("refreshes run one after another when they overlap (several writers, or a policy's job)", async () => {
      const all = await Promise.allSettled(Array.from({ length: 4 }, () => refreshAggregates(tp.p.db, Date.now(), { since: T0 })));
      expect(all.map((r) => (r.status === "rejected" ? String(r.reason) : "ok"))).toEqual(["ok", "ok", "ok", "ok"]);
    });

  it("counts a reading that comes late, after its hour was materialized", async () => {
    await refreshAggregates(tp.p.db, Date.now());
    // T2, half a minute into its first hour: a reading the gateway had held back.
    await insert("T2", [T0 + 30_000], () => false, () => 50);
    // A refresh that does not reach back to it keeps the hour's old figures ...
    await refreshAggregates(tp.p.db, Date.now());
    const [before] = (await view("telemetry_hour", T0, T0 + HOUR)).filter((r) => r.terminal_id === "T2");
    expect(before).toMatchObject({ readings: 60 });
    // ... the writer's does: it reaches back to the oldest reading it stored since the last one.
    await refreshAggregates(tp.p.db, Date.now(), { since: T0 + 30_000 });
    const [t2] = (await view("telemetry_hour", T0, T0 + HOUR)).filter((r) => r.terminal_id === "T2");
    expect(t2).toMatchObject({ readings: 61, on_readings: 60, min_mwh: 0 });
  });

  if (engine === "timescaledb")
    it("the refresh policies run as background jobs and materialize what came since (no writer here)", async () => {
      // One hour of readings, inside the minute policy's window (3 h back to 1 min ago) and the
      // hour policy's (3 days back to 1 h ago), that no refresh has seen yet.
      const H = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
      await insert("T1", Array.from({ length: 60 }, (_, i) => H + i * MIN), () => true, (t) => 2_000_000 + (t - H) / 1000);
      const materialized = async (view: string) => {
        const c = await tp.p.db.query(
          "SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) AS t FROM timescaledb_information.continuous_aggregates WHERE view_name = $1",
          [view],
        );
        const r = await tp.p.db.query(
          `SELECT count(*)::int AS buckets, coalesce(sum(readings), 0)::int AS readings FROM ${c.rows[0].t}
           WHERE terminal_id = 'T1' AND bucket >= vv_ms_to_ts($1::bigint) AND bucket < vv_ms_to_ts($2::bigint)`,
          [H, H + HOUR],
        );
        return r.rows[0] as { buckets: number; readings: number };
      };
      // Only the policies' jobs can materialize them: no writer runs, and this test refreshes
      // nothing. The policies as the migration set them, scheduled every second instead of every
      // minute and every ten: the minute level first, then the hour level from it.
      const minute = await policyRuns(tp.p.db, await policyJob(tp.p.db, "policy_refresh_continuous_aggregate", "telemetry_minute"), async () => {
        const m = await materialized("telemetry_minute");
        return m.buckets === 60 && m.readings === 60;
      });
      expect(minute.successes).toBeGreaterThan(0);
      const hour = await policyRuns(tp.p.db, await policyJob(tp.p.db, "policy_refresh_continuous_aggregate", "telemetry_hour"), async () => {
        const h = await materialized("telemetry_hour");
        return h.buckets === 1 && h.readings === 60;
      });
      expect(hour.successes).toBeGreaterThan(0);
      expect((await view("telemetry_hour", H, H + HOUR)).filter((r) => r.terminal_id === "T1")).toEqual([
        { terminal_id: "T1", bucket: H, readings: 60, on_readings: 60, min_mwh: 2_000_000, max_mwh: 2_003_540 },
      ]);
    });
}

// The writer's refresh reaches back to late readings on both paths (on TimescaleDB, past the
// policies' windows, which would never reach a day back at the minute level).
function writerSuite(engine: "plain" | "timescaledb") {
  let tp: TestPlatform;
  beforeAll(async () => {
    tp = await testPlatform({ VEND_STORAGE: engine, AGGREGATE_REFRESH_S: "1" }, { parts: { cutoff: false, faults: false } });
    await seedFleet(tp, { terminals: ["T1"] });
  });
  afterAll(async () => {
    await tp?.[Symbol.asyncDispose]();
  });

  it("counts readings it stored, also one that came a day late, at its next refresh", async () => {
    const hourOf = async (at: number) =>
      (
        await tp.p.db.query<{ n: number }>(
          "SELECT coalesce(sum(readings), 0)::int AS n FROM telemetry_hour WHERE terminal_id = 'T1' AND bucket = date_bin(interval '1 hour', vv_ms_to_ts($1::bigint), timestamptz 'epoch')",
          [at],
        )
      ).rows[0]!.n;
    /** Whether `view` is materialized past `ms`: below its watermark it shows what refreshes stored, and nothing newer. */
    const materializedPast = async (view: string, ms: number) =>
      (
        await tp.p.db.query<{ past: boolean }>(
          engine === "timescaledb"
            ? `SELECT _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(mat_hypertable_id)) > vv_ms_to_ts($2::bigint) AS past
               FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = $1::text`
            : "SELECT upto > vv_ms_to_ts($2::bigint) AS past FROM vv_rollup_watermarks WHERE name = $1::text",
          [view, ms],
        )
      ).rows[0]!.past;
    const now = Date.now();
    const late = now - 26 * HOUR;
    const reading = (ts: number, seq: number) => JSON.stringify({ ts, seq, state: "off", currentA: 0, voltageV: 220, energyWh: 1 });
    // Two minutes old: inside the window a refresh materializes on both paths (whole minutes, up
    // to a minute ago), so a refresh moves the minute level's watermark on.
    const first = now - 2 * MIN;
    tp.p.nc.publish(tp.p.subjects.tel("G1", "T1"), reading(first, 1));
    await until(async () => (await hourOf(first)) === 1, 10_000);
    // A refresh has run since: the minute level, which the hour view reads for what the hour level
    // has not materialized, is materialized past the late reading's hour, so the view shows that
    // hour from what refreshes stored only. Then the gateway delivers it.
    await until(() => materializedPast("telemetry_minute", late + HOUR), 10_000);
    expect(await hourOf(late)).toBe(0);
    tp.p.nc.publish(tp.p.subjects.tel("G1", "T1"), reading(late, 2));
    await until(async () => (await hourOf(late)) === 1, 10_000);
  });
}

describe("the writer's refresh, plain PostgreSQL", () => writerSuite("plain"));
describe.skipIf(!hasTimescale)("the writer's refresh, TimescaleDB", () => writerSuite("timescaledb"));

describe("telemetry aggregates, plain PostgreSQL", () => suite("plain"));
describe.skipIf(!hasTimescale)("telemetry aggregates, TimescaleDB", () => suite("timescaledb"));
