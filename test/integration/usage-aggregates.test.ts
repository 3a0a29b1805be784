import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { timescaleAvailable } from "../helpers/database.ts";
import type { TestPlatform } from "../helpers/platform.ts";
import { policyJob, policyRuns } from "../helpers/timescale.ts";
import { analyticsPlatform, craftSession, flatTariff, put } from "../helpers/usage.ts";

// The usage aggregates on TimescaleDB (sql/012_usage_aggregates.sql): their refresh policies run
// as background jobs and materialize what was rolled; real-time aggregation shows a session the
// moment it is rolled, before any refresh. Sessions are rolled here by the SQL function alone
// (as during an upgrade, or between the roller's commit and its refresh): nothing but the
// policies refreshes.
const hasTimescale = await timescaleAvailable("the usage aggregates' policies on TimescaleDB");

const HOUR = 3_600_000;
const DAY = 86_400_000;

describe.skipIf(!hasTimescale)("usage aggregates, TimescaleDB", () => {
  let tp: TestPlatform;
  const rollBySql = () => tp.p.db.query("SELECT vv_roll_session_usage(now(), 100)");
  const materialized = async (view: string) => {
    const c = await tp.p.db.query(
      "SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) AS t FROM timescaledb_information.continuous_aggregates WHERE view_name = $1",
      [view],
    );
    const r = await tp.p.db.query(`SELECT coalesce(sum(sessions), 0)::int AS sessions, coalesce(sum(energy_mwh), 0)::int AS mwh FROM ${c.rows[0].t}`);
    return r.rows[0] as { sessions: number; mwh: number };
  };
  const inView = async (view: string) =>
    (await tp.p.db.query(`SELECT coalesce(sum(sessions), 0)::int AS sessions, coalesce(sum(energy_mwh), 0)::int AS mwh FROM ${view}`)).rows[0] as {
      sessions: number;
      mwh: number;
    };

  beforeAll(async () => {
    tp = await analyticsPlatform("timescaledb");
    await put(tp, "/v1/admin/regions/R1", { name: "Shanghai", timezone: "Asia/Shanghai" });
    await put(tp, "/v1/admin/regions/R1/tariff", flatTariff);
    await put(tp, "/v1/admin/franchisees/FR1", { name: "FR1" });
    await put(tp, "/v1/admin/gateways/G1", { regionId: "R1" });
    await put(tp, "/v1/admin/terminals/T1", { qr: "qr-T1", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" });
    await put(tp, "/v1/admin/users/U1", {});
    // Three sessions two to four days ago: inside both policies' windows (up to 1 h and 1 day ago).
    const day = Math.floor(Date.now() / DAY) * DAY - 3 * DAY;
    for (let i = 0; i < 3; i++)
      await craftSession(tp.p.db, { id: `S-${i}`, user: "U1", terminal: "T1", franchisee: "FR1", start: day + i * 20 * HOUR, end: day + i * 20 * HOUR + HOUR, startMwh: 0, energyMwh: 1000 * (i + 1), feeCents: 1 });
    await rollBySql();
  });
  afterAll(async () => {
    await tp?.[Symbol.asyncDispose]();
  });

  it("the aggregates are real-time, hierarchical (daily over hourly), with a refresh policy each", async () => {
    const c = await tp.p.db.query(
      `SELECT c.view_name, c.materialized_only, coalesce(h.view_name, c.hypertable_name) AS over
       FROM timescaledb_information.continuous_aggregates c
       LEFT JOIN timescaledb_information.continuous_aggregates h ON h.materialization_hypertable_name = c.hypertable_name
       WHERE c.view_name LIKE 'usage_%' ORDER BY 1`,
    );
    expect(c.rows).toEqual([
      { view_name: "usage_daily", materialized_only: false, over: "usage_hourly" },
      { view_name: "usage_hourly", materialized_only: false, over: "session_usage" },
      // The reports' own (sql/026, sql/027; test/integration/usage-report-aggregates.test.ts).
      { view_name: "usage_terminal_daily", materialized_only: false, over: "usage_hourly" },
      { view_name: "usage_user_weekly", materialized_only: false, over: "usage_daily" },
    ]);
    for (const view of ["usage_hourly", "usage_daily", "usage_terminal_daily", "usage_user_weekly"]) await policyJob(tp.p.db, "policy_refresh_continuous_aggregate", view);
  });

  it("before any refresh, real-time aggregation already shows the rolled sessions", async () => {
    expect(await materialized("usage_hourly")).toEqual({ sessions: 0, mwh: 0 });
    expect(await inView("usage_hourly")).toEqual({ sessions: 3, mwh: 6000 });
    expect(await inView("usage_daily")).toEqual({ sessions: 3, mwh: 6000 });
  });

  it("the refresh policies run as background jobs and materialize them, hourly then daily", async () => {
    const hourly = await policyRuns(tp.p.db, await policyJob(tp.p.db, "policy_refresh_continuous_aggregate", "usage_hourly"), async () => {
      const m = await materialized("usage_hourly");
      return m.sessions === 3 && m.mwh === 6000;
    });
    expect(hourly.successes).toBeGreaterThan(0);
    const daily = await policyRuns(tp.p.db, await policyJob(tp.p.db, "policy_refresh_continuous_aggregate", "usage_daily"), async () => {
      const m = await materialized("usage_daily");
      return m.sessions === 3 && m.mwh === 6000;
    });
    expect(daily.successes).toBeGreaterThan(0);
    expect(await inView("usage_daily")).toEqual({ sessions: 3, mwh: 6000 });
  });

  it("a session rolled just now, started after the watermark, shows at once, by real-time aggregation", async () => {
    const start = Date.now() - 20 * 60_000;
    await craftSession(tp.p.db, { id: "S-NOW", user: "U1", terminal: "T1", franchisee: "FR1", start, end: Date.now() - 10_000, startMwh: 0, energyMwh: 500, feeCents: 1 });
    // A reading after its end: the writer has caught up, the rollup takes it at once.
    await tp.p.db.query(
      `INSERT INTO readings (terminal_id, ts, gateway_id, seq, relay_on, current_a, voltage_v, power_w, energy_mwh, received_at)
       VALUES ('T1', now(), 'G1', 1, false, 0, 220, 0, 500, now())`,
    );
    await rollBySql();
    expect(await materialized("usage_hourly")).toEqual({ sessions: 3, mwh: 6000 });
    expect(await inView("usage_hourly")).toEqual({ sessions: 4, mwh: 6500 });
    expect(await inView("usage_daily")).toEqual({ sessions: 4, mwh: 6500 });
    const r = await tp.api("GET", `/v1/admin/reports/usage?groupBy=user&from=${start - HOUR}&to=${Date.now()}`);
    expect(r.body.groups).toMatchObject([{ userId: "U1", sessions: 1, energyWh: 0.5 }]);
  });

  it("a session rolled late, started before the watermark, counts once the roller has refreshed its buckets", async () => {
    const start = Math.floor(Date.now() / DAY) * DAY - 3 * DAY + 2 * HOUR;
    await craftSession(tp.p.db, { id: "S-LATE", user: "U1", terminal: "T1", franchisee: "FR1", start, end: start + HOUR, startMwh: 0, energyMwh: 700, feeCents: 1 });
    await tp.p.control!.rollUsage();
    expect(await materialized("usage_hourly")).toEqual({ sessions: 4, mwh: 6700 });
    expect(await inView("usage_daily")).toEqual({ sessions: 5, mwh: 7200 });
  });
});
