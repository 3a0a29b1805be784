import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestPlatform } from "../helpers/platform.ts";
import { analyticsPlatform, craftSession, flatTariff, put } from "../helpers/usage.ts";

// session_curves keeps integer columns for fast sums; a session past their range (a meter that
// jumped) must neither fail the rollup, which would hold back every session after it, nor lose
// anything: it is split into parts that add up to it.
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
  for (const u of ["U1", "U2"]) await put(tp, `/v1/admin/users/${u}`, {});
  // 5 000 kWh in half an hour and a fee of 60 million yuan: both past 2^31 in one hour of day.
  await craftSession(tp.p.db, { id: "S-BIG", user: "U1", terminal: "T1", franchisee: "FR1", start: t0, end: t0 + 1_800_000, startMwh: 0, energyMwh: 5_000_000_000, feeCents: 6_000_000_000 });
  await craftSession(tp.p.db, { id: "S-OK", user: "U2", terminal: "T1", franchisee: "FR1", start: t0 + 3_600_000, end: t0 + 5_400_000, startMwh: 5_000_000_000, energyMwh: 1_500, feeCents: 2 });
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
    expect(rolled.rows.map((r) => r.session_id)).toEqual(["S-BIG", "S-OK"]);
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

  it("reports count the big session once, exactly", async () => {
    const r = await tp.api("GET", `/v1/admin/reports/usage?groupBy=user&from=${t0 - DAY}&to=${t0 + DAY}`);
    expect(r.status).toBe(200);
    const hourly = (h: number, wh: number) => Array.from({ length: 24 }, (_, i) => (i === h ? wh : 0));
    expect(r.body.groups).toEqual([
      { userId: "U1", energyWh: 5_000_000, feeCents: 6_000_000_000, sessions: 1, hourly: hourly(10, 5_000_000) },
      { userId: "U2", energyWh: 1.5, feeCents: 2, sessions: 1, hourly: hourly(11, 1.5) },
    ]);
    const region = await tp.api("GET", `/v1/admin/reports/usage?groupBy=region&from=${t0 - DAY}&to=${t0 + DAY}`);
    expect(region.body.groups).toEqual([{ regionId: "R1", energyWh: 5_000_001.5, feeCents: 6_000_000_002, sessions: 2, hourly: hourly(10, 5_000_000).map((v, i) => (i === 11 ? 1.5 : v)) }]);
  });
});
