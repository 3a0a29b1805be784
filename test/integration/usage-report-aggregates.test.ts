import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { timescaleAvailable } from "../helpers/database.ts";
import type { TestPlatform } from "../helpers/platform.ts";
import { policyJob, policyRuns } from "../helpers/timescale.ts";
import { analyticsPlatform, craftSession, flatTariff, put } from "../helpers/usage.ts";

// The reports' own aggregates, the daily one keyed by terminal (sql/026_usage_terminal_daily.sql)
// and the weekly one keyed by user (sql/027_usage_user_weekly.sql), hold exactly the sums of
// usage_daily with the other keys folded away, on both paths: after a rollup, after a session's
// facts are deleted to roll it again (its buckets gone when it was their only session), and after
// the new rollup. On TimescaleDB they are real-time continuous aggregates over usage_hourly and
// usage_daily, materialized by their own refresh policies.
const hasTimescale = await timescaleAvailable("the report aggregates on TimescaleDB");

const HOUR = 3_600_000;
const DAY = 86_400_000;
const D = Math.floor(Date.now() / DAY) * DAY;
// Inside the daily policies' windows (up to 1 day ago). Two users on T1 on day -4 (one terminal
// row from two usage_daily rows), one session across UTC midnight, T3's day -3 a lone session (and
// U3's only one that week); two more weeks back, so that a 21-day report has whole weeks.
const sessions = [
  { id: "S1", user: "U1", terminal: "T1", region: "R1", franchisee: "FR1", start: D - 4 * DAY + HOUR, minutes: 60, mwh: 1000 },
  { id: "S2", user: "U2", terminal: "T1", region: "R1", franchisee: "FR1", start: D - 4 * DAY + 5 * HOUR, minutes: 30, mwh: 2000 },
  { id: "S3", user: "U1", terminal: "T2", region: "R2", franchisee: "FR1", start: D - 4 * DAY + 23.5 * HOUR, minutes: 90, mwh: 3000 },
  { id: "S4", user: "U3", terminal: "T3", region: "R1", franchisee: "FR2", start: D - 3 * DAY + 2 * HOUR, minutes: 45, mwh: 4000 },
  { id: "S5", user: "U1", terminal: "T1", region: "R1", franchisee: "FR1", start: D - 2 * DAY + 10 * HOUR, minutes: 60, mwh: 5000 },
  { id: "S6", user: "U2", terminal: "T3", region: "R1", franchisee: "FR2", start: D - 2 * DAY + 11 * HOUR, minutes: 20, mwh: 6000 },
  { id: "S7", user: "U1", terminal: "T2", region: "R2", franchisee: "FR1", start: D - 10 * DAY + 7 * HOUR, minutes: 40, mwh: 7000 },
  { id: "S8", user: "U3", terminal: "T1", region: "R1", franchisee: "FR1", start: D - 16 * DAY + 20 * HOUR, minutes: 50, mwh: 8000 },
];
const WEEK = `date_bin(interval '7 days', bucket, timestamptz '2000-01-03 00:00:00+00')`;
const HOURS = Array.from({ length: 24 }, (_, h) => `mwh_${String(h).padStart(2, "0")}`);
const shape = (sums: (c: string) => string, keys = "terminal_id, region_id, franchisee_id", bucket = "bucket") =>
  `vv_ts_to_ms(${bucket})::float8 AS bucket, ${keys}, ${["sessions", "fee_cents", "energy_mwh", "busy_ms"].map((c) => `${sums(c)}::float8 AS ${c}`).join(", ")},
   ARRAY[${HOURS.map(sums).join(", ")}]::float8[] AS curve`;

function suite(engine: "plain" | "timescaledb") {
  let tp: TestPlatform;
  const q = async (sql: string) => (await tp.p.db.query(sql)).rows;
  const terminalDaily = () => q(`SELECT ${shape((c) => c)} FROM usage_terminal_daily ORDER BY 1, 2, 3, 4`);
  // What the reports summed before: usage_daily, keyed by user too.
  const fromUserDaily = () => q(`SELECT ${shape((c) => `sum(${c})`)} FROM usage_daily GROUP BY bucket, terminal_id, region_id, franchisee_id ORDER BY 1, 2, 3, 4`);
  const userWeekly = () => q(`SELECT ${shape((c) => c, "user_id")} FROM usage_user_weekly ORDER BY 1, 2`);
  const weeklyFromUserDaily = () => q(`SELECT ${shape((c) => `sum(${c})`, "user_id", WEEK)} FROM usage_daily GROUP BY ${WEEK}, user_id ORDER BY 1, 2`);
  const rows = async () => (await terminalDaily()).map((r) => [r.bucket, r.terminal_id, r.sessions]);
  const same = async () => {
    expect(await terminalDaily()).toEqual(await fromUserDaily());
    expect(await userWeekly()).toEqual(await weeklyFromUserDaily());
  };
  // TimescaleDB: the refresh policies run as jobs, in the order they read each other, each until
  // its aggregate shows its effect.
  const policies = async (effects: { terminal: () => Promise<boolean>; user?: () => Promise<boolean> }) => {
    const any = async () => true;
    for (const [view, effect] of [["usage_hourly", any], ["usage_daily", any], ["usage_terminal_daily", effects.terminal], ["usage_user_weekly", effects.user ?? any]] as const) {
      const runs = await policyRuns(tp.p.db, await policyJob(tp.p.db, "policy_refresh_continuous_aggregate", view), effect);
      expect(runs.successes).toBeGreaterThan(0);
    }
  };

  beforeAll(async () => {
    tp = await analyticsPlatform(engine);
    for (const r of ["R1", "R2"]) {
      await put(tp, `/v1/admin/regions/${r}`, { name: r, timezone: "Asia/Shanghai" });
      await put(tp, `/v1/admin/regions/${r}/tariff`, flatTariff);
    }
    for (const f of ["FR1", "FR2"]) await put(tp, `/v1/admin/franchisees/${f}`, { name: f });
    await put(tp, "/v1/admin/gateways/G1", { regionId: "R1" });
    for (const s of sessions) await put(tp, `/v1/admin/terminals/${s.terminal}`, { qr: `qr-${s.terminal}`, gatewayId: "G1", regionId: s.region, franchiseeId: s.franchisee });
    for (const u of ["U1", "U2", "U3"]) await put(tp, `/v1/admin/users/${u}`, {});
    for (const s of sessions)
      await craftSession(tp.p.db, { ...s, end: s.start + s.minutes * 60_000, startMwh: 0, energyMwh: s.mwh, feeCents: s.mwh / 1000 });
    // Rolled by the SQL function alone: on TimescaleDB nothing refreshes but the policies.
    await tp.p.db.query("SELECT vv_roll_session_usage(now(), 100)");
  });
  afterAll(async () => {
    await tp?.[Symbol.asyncDispose]();
  });

  const expected = [
    [D - 16 * DAY, "T1", 1],
    [D - 10 * DAY, "T2", 1],
    [D - 4 * DAY, "T1", 2],
    [D - 4 * DAY, "T2", 1],
    [D - 3 * DAY, "T3", 1],
    [D - 2 * DAY, "T1", 1],
    [D - 2 * DAY, "T3", 1],
  ];

  it(`hold usage_daily's sums by terminal, region and franchisee, and by user and week (${engine})`, async () => {
    expect(await rows()).toEqual(expected);
    await same();
    expect((await userWeekly()).reduce((a, r) => a + r.sessions, 0)).toBe(sessions.length);
    // The session across midnight is whole in its start's day, its hours summing to its energy.
    const t2 = (await terminalDaily()).find((r) => r.terminal_id === "T2" && r.bucket === D - 4 * DAY)!;
    expect(t2).toMatchObject({ region_id: "R2", franchisee_id: "FR1", sessions: 1, energy_mwh: 3000, fee_cents: 3 });
    expect(t2.curve.reduce((a: number, b: number) => a + b, 0)).toBe(3000);
  });

  if (engine === "timescaledb")
    it("are real-time continuous aggregates over usage_hourly and usage_daily, materialized by their refresh policies", async () => {
      const c = await q(
        `SELECT c.view_name, c.materialized_only, h.view_name AS over, format('%I.%I', c.materialization_hypertable_schema, c.materialization_hypertable_name) AS m
         FROM timescaledb_information.continuous_aggregates c
         JOIN timescaledb_information.continuous_aggregates h ON h.materialization_hypertable_name = c.hypertable_name
         WHERE c.view_name IN ('usage_terminal_daily', 'usage_user_weekly') ORDER BY 1`,
      );
      expect(c).toMatchObject([
        { view_name: "usage_terminal_daily", materialized_only: false, over: "usage_hourly" },
        { view_name: "usage_user_weekly", materialized_only: false, over: "usage_daily" },
      ]);
      const materialized = async () => (await q(`SELECT (SELECT coalesce(sum(sessions), 0) FROM ${c[0].m})::int AS t, (SELECT coalesce(sum(sessions), 0) FROM ${c[1].m})::int AS u`))[0];
      // (The policies' first runs, soon after the database was made, may have come before or after
      // the rollup: what is materialized before this point is not asserted.)
      // A policy refreshes whole buckets up to its end offset (1 day ago): every day here, and the
      // weeks that ended before then (the later ones real-time aggregation answers).
      const weeksDone = async () =>
        (await q("SELECT coalesce(sum(sessions), 0)::int AS n FROM usage_user_weekly WHERE bucket + interval '7 days' <= now() - interval '1 day'"))[0].n as number;
      await policies({ terminal: async () => (await materialized()).t === sessions.length, user: async () => (await materialized()).u === (await weeksDone()) });
      expect(await weeksDone()).toBeGreaterThan(0);
      await same();
    });

  it("a session's facts deleted to roll it again: its lone bucket gone, then back, the sums equal throughout", async () => {
    await tp.p.db.query("BEGIN; DELETE FROM session_usage WHERE session_id = 'S4'; UPDATE sessions SET usage_rolled_at = NULL WHERE session_id = 'S4'; COMMIT");
    const without = expected.filter((r) => r[1] !== "T3" || r[0] !== D - 3 * DAY);
    // Plain: the delete's trigger takes it away at once. TimescaleDB: the delete invalidates the
    // buckets; the policies' next runs recompute them.
    if (engine === "timescaledb")
      await policies({ terminal: async () => JSON.stringify(await rows()) === JSON.stringify(without) });
    expect(await rows()).toEqual(without);
    // U3's week of day -3 is gone too (S4 was its only session).
    expect((await userWeekly()).filter((r) => r.user_id === "U3").map((r) => r.sessions)).toEqual([1]);
    await same();
    // The roller rolls it anew and (TimescaleDB) refreshes its buckets.
    await tp.p.control!.rollUsage();
    expect(await rows()).toEqual(expected);
    expect((await userWeekly()).filter((r) => r.user_id === "U3").map((r) => r.sessions)).toEqual([1, 1]);
    await same();
  });

  it("the reports by terminal, region and franchisee agree with the report by user, over whole weeks and days", async () => {
    // 21 days: two or three whole weeks (usage_user_weekly), days at either end (usage_daily).
    const range = `from=${D - 21 * DAY}&to=${D}`;
    const total = async (g: string) => {
      const r = await tp.api("GET", `/v1/admin/reports/usage?groupBy=${g}&${range}`);
      expect(r.status).toBe(200);
      return r.body.groups.reduce(
        (a: { e: number; f: number; n: number; h: number[] }, x: { energyWh: number; feeCents: number; sessions: number; hourly: number[] }) => ({
          e: a.e + x.energyWh,
          f: a.f + x.feeCents,
          n: a.n + x.sessions,
          h: a.h.map((v, i) => v + x.hourly[i]!),
        }),
        { e: 0, f: 0, n: 0, h: new Array<number>(24).fill(0) },
      );
    };
    const byUser = await total("user");
    expect(byUser).toMatchObject({ e: 36, f: 36, n: 8 });
    for (const g of ["terminal", "region", "franchisee"]) expect(await total(g), g).toEqual(byUser);
    const t = await tp.api("GET", `/v1/admin/reports/usage?groupBy=terminal&${range}`);
    expect(t.body.groups.map((x: { terminalId: string; sessions: number; energyWh: number }) => [x.terminalId, x.sessions, x.energyWh])).toEqual([
      ["T1", 4, 16],
      ["T2", 2, 10],
      ["T3", 2, 10],
    ]);
    const u = await tp.api("GET", `/v1/admin/reports/usage?groupBy=user&${range}`);
    expect(u.body.groups.map((x: { userId: string; sessions: number; energyWh: number; feeCents: number }) => [x.userId, x.sessions, x.energyWh, x.feeCents])).toEqual([
      ["U1", 4, 16, 16],
      ["U2", 2, 8, 8],
      ["U3", 2, 12, 12],
    ]);
    // A user's own, from the same aggregates.
    const me = await tp.api("GET", `/v1/me/usage?${range}`, undefined, await tp.token("U3", "user"));
    expect(me.body).toMatchObject({ userId: "U3", sessions: 2, energyWh: 12, feeCents: 12 });
  });
}

describe("the terminal usage aggregate, plain PostgreSQL", () => suite("plain"));
describe.skipIf(!hasTimescale)("the terminal usage aggregate, TimescaleDB", () => suite("timescaledb"));
