import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { refreshAggregates } from "../../ingest/index.ts";
import { timescaleAvailable } from "../helpers/database.ts";
import { testPlatform, type TestPlatform } from "../helpers/platform.ts";

// Step 108 on a crafted week in Asia/Shanghai: four terminals all busy 18:00-22:00 local, one of
// them busy 08:00-12:00, idle otherwise; a terminal of another region busy all day must not count.
const hasTimescale = await timescaleAvailable();
if (!hasTimescale) console.warn("SKIPPED: the insights on the TimescaleDB path — the timescaledb extension is not installed and preloaded on this PostgreSQL");

const MIN = 60_000;
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
    tp = await testPlatform({ VEND_STORAGE: engine }, { parts: { cutoff: false, faults: false, writer: false }, freshDatabase: engine === "timescaledb" });
    const ok = async (path: string, body: unknown) => {
      const r = await tp.api("PUT", path, body);
      if (r.status >= 300) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.body)}`);
    };
    await ok("/v1/admin/regions/R1", { name: "Shanghai", timezone: "Asia/Shanghai" });
    await ok("/v1/admin/regions/R2", { name: "Elsewhere", timezone: "Asia/Shanghai" });
    await ok("/v1/admin/franchisees/FR1", { name: "FR1" });
    await ok("/v1/admin/gateways/G1", { regionId: "R1" });
    const terminals: [string, string, (h: number) => boolean][] = [
      ["T1", "R1", (h) => (h >= 18 && h < 22) || (h >= 8 && h < 12)],
      ["T2", "R1", (h) => h >= 18 && h < 22],
      ["T3", "R1", (h) => h >= 18 && h < 22],
      ["T4", "R1", (h) => h >= 18 && h < 22],
      ["T9", "R2", () => true],
    ];
    for (const [t, region, busy] of terminals) {
      await ok(`/v1/admin/terminals/${t}`, { qr: `qr-${t}`, gatewayId: "G1", regionId: region, franchiseeId: "FR1" });
      const ts = Array.from({ length: (7 * DAY) / MIN }, (_, i) => from + i * MIN);
      await tp.p.db.query(
        `INSERT INTO readings (terminal_id, ts, gateway_id, seq, relay_on, current_a, voltage_v, power_w, energy_mwh, received_at)
         SELECT $1, vv_ms_to_ts(t), 'G1', 0, o, 0, 220, 0, 0, vv_ms_to_ts(t) FROM unnest($2::bigint[], $3::boolean[]) AS u(t, o)`,
        [t, ts, ts.map((x) => busy(localHour(x)))],
      );
    }
    await refreshAggregates(tp.p.db, Date.now(), { since: from });
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
}

describe("admin insights, plain PostgreSQL", () => suite("plain"));
describe.skipIf(!hasTimescale)("admin insights, TimescaleDB", () => suite("timescaledb"));
