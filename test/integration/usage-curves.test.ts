import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestPlatform } from "../helpers/platform.ts";
import { analyticsPlatform, craftSession, flatTariff, put } from "../helpers/usage.ts";

// session_curves keeps integer columns for fast sums; a session past their range (a meter that
// jumped) must neither fail the rollup, which would hold back every session after it, nor lose
// anything: it is split into parts that add up to it, or, past 16 parts, kept in bigints.
const DAY = 86_400_000;
let tp: TestPlatform;
const t0 = Date.parse("2026-11-20T02:00:00Z"); // 10:00 in Asia/Shanghai

beforeAll(async () => {
  tp = await analyticsPlatform("plain");
  await put(tp, "/v1/admin/regions/R1", { name: "Shanghai", timezone: "Asia/Shanghai" });
  await put(tp, "/v1/admin/regions/R1/tariff", flatTariff);
  await put(tp, "/v1/admin/franchisees/FR1", { name: "FR1" });
  await put(tp, "/v1/admin/gateways/G1", { regionId: "R1" });
  await put(tp, "/v1/admin/terminals/T1", { qr: "qr-T1", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" });
  for (const u of ["U1", "U2", "U3", "U4"]) await put(tp, `/v1/admin/users/${u}`, {});
  // 5 000 kWh in half an hour and a fee of 60 million yuan: both past 2^31 in one hour of day.
  await craftSession(tp.p.db, { id: "S-BIG", user: "U1", terminal: "T1", franchisee: "FR1", start: t0, end: t0 + 1_800_000, startMwh: 0, energyMwh: 5_000_000_000, feeCents: 6_000_000_000 });
  await craftSession(tp.p.db, { id: "S-OK", user: "U2", terminal: "T1", franchisee: "FR1", start: t0 + 3_600_000, end: t0 + 5_400_000, startMwh: 5_000_000_000, energyMwh: 1_500, feeCents: 2 });
  // 2^40 mWh (past 16 parts of 2^31), and 2^62 mWh ten days before the reports' range.
  await craftSession(tp.p.db, { id: "S-HUGE", user: "U3", terminal: "T1", franchisee: "FR1", start: t0 + 7_200_000, end: t0 + 7_500_000, startMwh: 0, energyMwh: 2 ** 40, feeCents: 10 });
  await craftSession(tp.p.db, { id: "S-ABSURD", user: "U4", terminal: "T1", franchisee: "FR1", start: t0 - 10 * DAY, end: t0 - 10 * DAY + 60_000, startMwh: 0, energyMwh: 0, feeCents: 0 });
  await tp.p.db.query("UPDATE sessions SET energy_mwh = 4611686018427387904, end_mwh = 4611686018427387904 WHERE session_id = 'S-ABSURD'");
  // As the roller of this release or of the one before (during an upgrade) rolls: the curves come
  // with the sessions' marking, whoever marks them.
  await tp.p.db.query("SELECT vv_roll_session_usage(now(), 100)");
});
afterAll(async () => {
  await tp?.[Symbol.asyncDispose]();
});

describe("session curves past the integer range", () => {
  it("both sessions are rolled, the big one in parts that add up to it", async () => {
    const rolled = await tp.p.db.query("SELECT session_id FROM sessions WHERE usage_rolled_at IS NOT NULL ORDER BY 1");
    expect(rolled.rows.map((r) => r.session_id)).toEqual(["S-ABSURD", "S-BIG", "S-HUGE", "S-OK"]);
    const parts = await tp.p.db.query(
      "SELECT session_id, part, sessions, fee_cents, e10, e11 FROM session_curves ORDER BY session_id, part",
    );
    expect(parts.rows).toEqual([
      { session_id: "S-BIG", part: 0, sessions: 1, fee_cents: 2147483647, e10: 2147483647, e11: 0 },
      { session_id: "S-BIG", part: 1, sessions: 0, fee_cents: 2147483647, e10: 2147483647, e11: 0 },
      { session_id: "S-BIG", part: 2, sessions: 0, fee_cents: 6_000_000_000 - 2 * 2147483647, e10: 5_000_000_000 - 2 * 2147483647, e11: 0 },
      { session_id: "S-OK", part: 0, sessions: 1, fee_cents: 2, e10: 0, e11: 1_500 },
    ]);
  });

  it("past 16 parts, a session keeps its curve in bigints, whatever its size", async () => {
    const big = await tp.p.db.query("SELECT session_id, fee_cents::text, hours_mwh::text FROM session_curves_big ORDER BY 1");
    const hours = (h: number, v: string) => `{${Array.from({ length: 24 }, (_, i) => (i === h ? v : "0")).join(",")}}`;
    expect(big.rows).toEqual([
      { session_id: "S-ABSURD", fee_cents: "0", hours_mwh: hours(10, "4611686018427387904") },
      { session_id: "S-HUGE", fee_cents: "10", hours_mwh: hours(12, String(2 ** 40)) },
    ]);
    expect((await tp.p.db.query("SELECT count(*)::int AS n FROM session_curves WHERE session_id IN ('S-ABSURD', 'S-HUGE')")).rows[0].n).toBe(0);
  });

  it("reports count the big sessions once, exactly", async () => {
    const r = await tp.api("GET", `/v1/admin/reports/usage?groupBy=user&from=${t0 - DAY}&to=${t0 + DAY}`);
    expect(r.status).toBe(200);
    const hourly = (h: number, wh: number) => Array.from({ length: 24 }, (_, i) => (i === h ? wh : 0));
    expect(r.body.groups).toEqual([
      { userId: "U1", energyWh: 5_000_000, feeCents: 6_000_000_000, sessions: 1, hourly: hourly(10, 5_000_000) },
      { userId: "U2", energyWh: 1.5, feeCents: 2, sessions: 1, hourly: hourly(11, 1.5) },
      { userId: "U3", energyWh: 2 ** 40 / 1000, feeCents: 10, sessions: 1, hourly: hourly(12, 2 ** 40 / 1000) },
    ]);
    const region = await tp.api("GET", `/v1/admin/reports/usage?groupBy=region&from=${t0 - DAY}&to=${t0 + DAY}`);
    const all = hourly(10, 5_000_000).map((v, i) => (i === 11 ? 1.5 : i === 12 ? 2 ** 40 / 1000 : v));
    expect(region.body.groups).toEqual([
      { regionId: "R1", energyWh: (5_000_001_500 + 2 ** 40) / 1000, feeCents: 6_000_000_012, sessions: 3, hourly: all },
    ]);
    // A range with the 2^62 mWh session cannot be told exactly in JSON numbers: refused, not rounded.
    const absurd = await tp.api("GET", `/v1/admin/reports/usage?groupBy=user&from=${t0 - 11 * DAY}&to=${t0 + DAY}`);
    expect(absurd.status).toBe(500);
  });
});
