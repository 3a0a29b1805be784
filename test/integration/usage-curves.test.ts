import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wireBounds } from "../../contracts/index.ts";
import { timescaleAvailable } from "../helpers/database.ts";
import type { TestPlatform } from "../helpers/platform.ts";
import { analyticsPlatform, craftSession, flatTariff, put } from "../helpers/usage.ts";

// The largest sessions the wire lets through (a register of 10^15 mWh, contracts/bounds.ts) are
// summed exactly in the aggregates' bigints; a total that JSON numbers cannot hold exactly (past
// 2^53) is refused, never rounded.
const hasTimescale = await timescaleAvailable("the usage curves at the bounds on the TimescaleDB path");

const DAY = 86_400_000;
const MAX_MWH = wireBounds.energyWh * 1000;
const t0 = Date.parse("2026-11-20T02:00:00Z"); // 10:00 in Asia/Shanghai

function suite(engine: "plain" | "timescaledb") {
  let tp: TestPlatform;
  beforeAll(async () => {
    tp = await analyticsPlatform(engine);
    await put(tp, "/v1/admin/regions/R1", { name: "Shanghai", timezone: "Asia/Shanghai" });
    await put(tp, "/v1/admin/regions/R1/tariff", flatTariff);
    await put(tp, "/v1/admin/franchisees/FR1", { name: "FR1" });
    await put(tp, "/v1/admin/gateways/G1", { regionId: "R1" });
    await put(tp, "/v1/admin/terminals/T1", { qr: "qr-T1", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" });
    for (const u of ["U1", "U2", "U3"]) await put(tp, `/v1/admin/users/${u}`, {});
    // The whole register in half an hour, with a fee of 10^13 cents; and a small one after it.
    await craftSession(tp.p.db, { id: "S-BIG", user: "U1", terminal: "T1", franchisee: "FR1", start: t0, end: t0 + 1_800_000, startMwh: 0, energyMwh: MAX_MWH, feeCents: 1e13 });
    await craftSession(tp.p.db, { id: "S-OK", user: "U2", terminal: "T1", franchisee: "FR1", start: t0 + 3_600_000, end: t0 + 5_400_000, startMwh: 0, energyMwh: 1_500, feeCents: 2 });
    // Ten days before: nine more of the largest, so that a range with them passes 2^53 mWh.
    for (let i = 0; i < 9; i++) {
      const s = t0 - 10 * DAY + i * 3_600_000;
      await craftSession(tp.p.db, { id: `S-MAX${i}`, user: "U3", terminal: "T1", franchisee: "FR1", start: s, end: s + 1_800_000, startMwh: 0, energyMwh: MAX_MWH, feeCents: 1 });
    }
    await tp.p.control!.rollUsage();
  });
  afterAll(async () => {
    await tp?.[Symbol.asyncDispose]();
  });

  it(`reports the largest sessions exactly (${engine})`, async () => {
    expect((await tp.p.db.query("SELECT count(*)::int AS n FROM sessions WHERE usage_rolled_at IS NOT NULL")).rows[0].n).toBe(11);
    const r = await tp.api("GET", `/v1/admin/reports/usage?groupBy=user&from=${t0 - DAY}&to=${t0 + DAY}`);
    expect(r.status).toBe(200);
    const hourly = (h: number, wh: number) => Array.from({ length: 24 }, (_, i) => (i === h ? wh : 0));
    expect(r.body.groups).toEqual([
      { userId: "U1", energyWh: MAX_MWH / 1000, feeCents: 1e13, sessions: 1, hourly: hourly(10, MAX_MWH / 1000) },
      { userId: "U2", energyWh: 1.5, feeCents: 2, sessions: 1, hourly: hourly(11, 1.5) },
    ]);
    const region = await tp.api("GET", `/v1/admin/reports/usage?groupBy=region&from=${t0 - DAY}&to=${t0 + DAY}`);
    expect(region.body.groups).toEqual([
      { regionId: "R1", energyWh: (MAX_MWH + 1_500) / 1000, feeCents: 1e13 + 2, sessions: 2, hourly: hourly(10, MAX_MWH / 1000).map((v, i) => (i === 11 ? 1.5 : v)) },
    ]);
  });

  it("a total past 2^53 mWh cannot be told exactly in JSON numbers: refused, not rounded", async () => {
    const all = await tp.api("GET", `/v1/admin/reports/usage?groupBy=region&from=${t0 - 11 * DAY}&to=${t0 + DAY}`);
    expect(all.status).toBe(422);
    expect(all.body.error.code).toBe("too_large");
    // Each user's own stays below it.
    const users = await tp.api("GET", `/v1/admin/reports/usage?groupBy=user&from=${t0 - 11 * DAY}&to=${t0 - 9 * DAY}`);
    expect(users.body.groups).toEqual([{ userId: "U3", energyWh: (9 * MAX_MWH) / 1000, feeCents: 9, sessions: 9, hourly: expect.any(Array) }]);
  });
}

describe("usage curves at the wire's bounds, plain PostgreSQL", () => suite("plain"));
describe.skipIf(!hasTimescale)("usage curves at the wire's bounds, TimescaleDB", () => suite("timescaledb"));
