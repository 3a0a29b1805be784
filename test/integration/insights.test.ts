import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { timescaleAvailable } from "../helpers/database.ts";
import type { TestPlatform } from "../helpers/platform.ts";
import { analyticsPlatform, craftSession, flatTariff, put } from "../helpers/usage.ts";

// Step 108 on a crafted week in Asia/Shanghai: four terminals in sessions 18:00-22:00 local, one of
// them also 08:00-12:00, idle otherwise; a terminal of another region busy all day must not count.
const hasTimescale = await timescaleAvailable("the insights on the TimescaleDB path");

const DAY = 86_400_000;
const localMidnight = (daysAgo: number) => {
  // Shanghai is UTC+8 all year: its midnight is 16:00 UTC the day before.
  const utcMidnight = Math.floor(Date.now() / DAY) * DAY - daysAgo * DAY;
  return utcMidnight - 8 * 3_600_000;
};
const from = localMidnight(14);
const to = from + 7 * DAY;
const localHour = (ts: number) => new Date(ts + 8 * 3_600_000).getUTCHours();

function suite(engine: "plain" | "timescaledb") {
  let tp: TestPlatform;
  beforeAll(async () => {
    tp = await analyticsPlatform(engine);
    const ok = (path: string, body: unknown) => put(tp, path, body);
    await ok("/v1/admin/regions/R1", { name: "Shanghai", timezone: "Asia/Shanghai", capacityKw: 0.008 });
    await ok("/v1/admin/regions/R2", { name: "Elsewhere", timezone: "Asia/Shanghai" });
    await ok("/v1/admin/franchisees/FR1", { name: "FR1" });
    await ok("/v1/admin/gateways/G1", { regionId: "R1" });
    await ok("/v1/admin/regions/R1/tariff", flatTariff);
    await ok("/v1/admin/regions/R2/tariff", flatTariff);
    await ok("/v1/admin/users/U1", {});
    // Sessions by local hours [from, to) each day of the week.
    const terminals: [string, string, [number, number][]][] = [
      ["T1", "R1", [[8, 12], [18, 22]]],
      ["T2", "R1", [[18, 22]]],
      ["T3", "R1", [[18, 22]]],
      ["T4", "R1", [[18, 22]]],
      ["T9", "R2", [[0, 24]]],
    ];
    for (const [t, region, runs] of terminals) {
      await ok(`/v1/admin/terminals/${t}`, { qr: `qr-${t}`, gatewayId: "G1", regionId: region, franchiseeId: "FR1" });
      for (let d = 0; d < 7; d++)
        for (const [h0, h1] of runs) {
          const s0 = from + d * DAY + h0 * 3_600_000;
          const s1 = from + d * DAY + h1 * 3_600_000;
          await craftSession(tp.p.db, { id: `S-${t}-${d}-${h0}`, user: "U1", terminal: t, region, franchisee: "FR1", start: s0, end: s1, startMwh: 0, energyMwh: 1000, feeCents: 1 });
        }
    }
    await tp.p.control!.rollUsage();
  });
  afterAll(async () => {
    await tp?.[Symbol.asyncDispose]();
  });

  it(`utilisation by local hour, peak, saturated and idle hours, and a tariff split (${engine})`, async () => {
    const r = await tp.api("GET", `/v1/admin/regions/R1/insights?from=${from}&to=${to}`);
    expect(r.status).toBe(200);
    const want = Array.from({ length: 24 }, (_, h) => (h >= 18 && h < 22 ? 1 : h >= 8 && h < 12 ? 0.25 : 0));
    expect(r.body).toMatchObject({ regionId: "R1", timezone: "Asia/Shanghai", installed: 4, utilisation: want });
    expect(r.body.peak).toMatchObject({ busy: 4, ofInstalled: 1 });
    expect(localHour(r.body.peak.at)).toBe(18);
    expect(r.body.saturatedHours).toEqual([18, 19, 20, 21]);
    expect(r.body.idleHours).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 22, 23]);
    expect(r.body.suggestedPeriods).toEqual([
      { start: "00:00", end: "08:00", kind: "valley" },
      { start: "08:00", end: "12:00", kind: "flat" },
      { start: "12:00", end: "18:00", kind: "valley" },
      { start: "18:00", end: "22:00", kind: "peak" },
      { start: "22:00", end: "24:00", kind: "valley" },
    ]);
  });

  it(`peak load against the region's capacity (${engine})`, async () => {
    const r = await tp.api("GET", `/v1/admin/regions/R1/insights?from=${from}&to=${to}`);
    // Four terminals end their evening sessions together, 1 Wh each (the crafted sessions book it in one hour): 4 Wh in an hour = 0.004 kW.
    expect(r.body.capacity).toMatchObject({ capacityKw: 0.008, peakLoadKw: 0.004, ofCapacity: 0.5 });
    expect(r.body.capacity.peakLoadAt).toBeGreaterThanOrEqual(from);
    const r2 = await tp.api("GET", `/v1/admin/regions/R2/insights?from=${from}&to=${to}`);
    expect(r2.body.capacity).toMatchObject({ capacityKw: null, ofCapacity: null });
  });

  it("half the week: the same shares (utilisation is per hour that occurred)", async () => {
    const r = await tp.api("GET", `/v1/admin/regions/R1/insights?from=${from + 3 * DAY}&to=${from + 5 * DAY}`);
    expect(r.body.utilisation[19]).toBe(1);
    expect(r.body.utilisation[9]).toBe(0.25);
  });

  it("an unknown region is 404; the other region has its own terminal only", async () => {
    expect((await tp.api("GET", `/v1/admin/regions/R7/insights?from=${from}&to=${to}`)).status).toBe(404);
    const r2 = await tp.api("GET", `/v1/admin/regions/R2/insights?from=${from}&to=${to}`);
    expect(r2.body).toMatchObject({ installed: 1, utilisation: new Array(24).fill(1), saturatedHours: Array.from({ length: 24 }, (_, h) => h) });
  });

  it("a terminal retired before the range is not installed in it; one retired during it still is", async () => {
    await put(tp, "/v1/admin/terminals/T8", { qr: "qr-T8", gatewayId: "G1", regionId: "R2", franchiseeId: "FR1" });
    expect((await tp.api("POST", "/v1/admin/terminals/T8/retire", { reason: "site closed" })).status).toBe(200);
    const installed = async () => (await tp.api("GET", `/v1/admin/regions/R2/insights?from=${from}&to=${to}`)).body.installed;
    // Retired mid-range: it stood there for part of it.
    await tp.p.db.query("UPDATE terminals SET retired_at = vv_ms_to_ts($1::bigint) WHERE terminal_id = 'T8'", [from + DAY]);
    expect(await installed()).toBe(2);
    // Retired the day before the range: T9 alone, busy all day, is the region's whole use.
    await tp.p.db.query("UPDATE terminals SET retired_at = vv_ms_to_ts($1::bigint) WHERE terminal_id = 'T8'", [from - DAY]);
    const r2 = await tp.api("GET", `/v1/admin/regions/R2/insights?from=${from}&to=${to}`);
    expect(r2.body).toMatchObject({ installed: 1, utilisation: new Array(24).fill(1) });
  });
}

describe("admin insights, plain PostgreSQL", () => suite("plain"));
describe.skipIf(!hasTimescale)("admin insights, TimescaleDB", () => suite("timescaledb"));
