import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedFleet, simGateway, terminalsSeen, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { NATS_URL } from "../helpers/env.ts";

// The simulated terminal's clock runs in the past, from 8 s before 08:00 in Shanghai on 2026-11-20,
// where the tariff changes from valley to peak price: the session crosses the boundary. 8 s cover
// the setup below (gateway, top-up, first readings) on a loaded machine (1.5 s did not, at a load
// of 7 on two cores); 15 Wh at the simulator's 3.7 kW take about 15 s, so the session still ends
// past the boundary however quick the setup.
const BOUNDARY = Date.UTC(2026, 10, 20, 0, 0, 0); // 2026-11-20T00:00Z = 08:00 Asia/Shanghai
const VALLEY = 10_000; // c/kWh = 10 c/Wh before 08:00
const PEAK = 100_000; // c/kWh = 100 c/Wh from 08:00
const PEAK_TIME = 36_000; // c/h = 10 c/s from 08:00
const SETUP_MS = 8000;

let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let nc: Awaited<ReturnType<typeof connect>>;
const readings: { ts: number; energyWh: number }[] = [];

beforeAll(async () => {
  tp = await testPlatform({ CONTROL_TICK_MS: "100" });
  await seedFleet(tp, {
    terminals: ["T1"],
    periods: [
      { start: "00:00", end: "08:00", energyCentsPerKwh: VALLEY, timeCentsPerHour: 0 },
      { start: "08:00", end: "24:00", energyCentsPerKwh: PEAK, timeCentsPerHour: PEAK_TIME },
    ],
  });
  const t0 = Date.now();
  const clock = () => BOUNDARY - SETUP_MS + (Date.now() - t0);
  nc = await connect({ servers: NATS_URL });
  const sub = nc.subscribe(`${tp.prefix}.tel.G1.T1`);
  void (async () => {
    for await (const m of sub) readings.push(m.json());
  })();
  gw = await simGateway(tp, { T1: {} }, { tickMs: 100, clock });
  // An energy target with a time price holds for the longest session: 1500 c + 12 h × 36000 c/h.
  await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1_000_000, reference: "seed" });
  await terminalsSeen(tp, gw);
});

afterAll(async () => {
  await gw?.stop();
  await nc?.close();
  await tp?.[Symbol.asyncDispose]();
});

/** Register at instant t, interpolated linearly between the readings around it. */
function registerAt(points: { ts: number; energyWh: number }[], t: number): number {
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!;
    const b = points[i]!;
    if (a.ts <= t && t <= b.ts) return a.energyWh + ((b.energyWh - a.energyWh) * (t - a.ts)) / (b.ts - a.ts);
  }
  throw new Error("t outside the readings");
}

describe("time-of-use across a period boundary", () => {
  it("bills each period's energy and time at its own price, rounded once", async () => {
    const user = await tp.token("U1", "user");
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 15 }, payment: "prepaid" }, user);
    expect(r.status).toBe(201);
    const s = await until(async () => {
      const x = await tp.api("GET", `/v1/sessions/${r.body.sessionId}`, undefined, user);
      return x.body.state === "completed" ? x.body : null;
    }, 45_000);
    const term = gw.terminals.get("T1")!;
    const on = term.events.find((e) => e.type === "power_on_ack") as { ts: number; energyWh: number };
    // The terminal's own stop at the target (power_off, limit) when it came before the cloud's cutoff.
    const off = term.events.find((e) => e.type === "power_off" || e.type === "power_off_ack") as { ts: number; energyWh: number };
    expect(on.ts).toBeLessThan(BOUNDARY);
    expect(off.ts).toBeGreaterThan(BOUNDARY);
    expect(s.startedAt).toBe(on.ts);
    expect(s.endedAt).toBe(off.ts);

    // The oracle: the register at 08:00 interpolated between the readings around it; energy before
    // it at the valley price, after it at the peak price plus the peak time price.
    const points = [on, ...readings.filter((x) => x.ts > on.ts && x.ts < off.ts), off];
    const atBoundary = registerAt(points, BOUNDARY);
    const valleyWh = atBoundary - on.energyWh;
    const peakWh = off.energyWh - atBoundary;
    const peakMs = off.ts - BOUNDARY;
    const exact = (valleyWh * VALLEY) / 1000 + (peakWh * PEAK) / 1000 + (peakMs * PEAK_TIME) / 3_600_000;
    // Floats here only to build the oracle; the platform's rational result must agree to the cent.
    expect(Math.abs(s.feeCents - exact)).toBeLessThanOrEqual(0.5 + 1e-6);

    const stored = await tp.p.db.query("SELECT meter FROM sessions WHERE session_id = $1", [s.sessionId]);
    const byPeriod = stored.rows[0].meter.byPeriod as Record<string, { mwh: string; ms: number }>;
    expect(Object.keys(byPeriod).sort()).toEqual(["0", "1"]);
    expect(byPeriod["1"]!.ms).toBe(peakMs);
    expect(byPeriod["0"]!.ms).toBe(BOUNDARY - on.ts);
    const mwh = (q: string) => {
      const [n, d = "1"] = q.split("/");
      return Number(n) / Number(d);
    };
    expect(mwh(byPeriod["0"]!.mwh) + mwh(byPeriod["1"]!.mwh)).toBeCloseTo((off.energyWh - on.energyWh) * 1000, 6);
    expect(mwh(byPeriod["0"]!.mwh)).toBeCloseTo(valleyWh * 1000, 0);

    // The receipt (issue 13): a line per period the session crossed, each priced at its own
    // energy and time rates, whose cents add up exactly to the billed fee.
    const rc = (await tp.api("GET", `/v1/sessions/${s.sessionId}/receipt`, undefined, user)).body;
    expect(rc.lines.map((l: { start: string; end: string }) => [l.start, l.end])).toEqual([
      ["00:00", "08:00"],
      ["08:00", "24:00"],
    ]);
    const [valley, peak] = rc.lines;
    expect(valley).toMatchObject({ energyCentsPerKwh: VALLEY, timeCentsPerHour: 0, timeCents: 0, durationS: (BOUNDARY - on.ts) / 1000 });
    expect(peak).toMatchObject({ energyCentsPerKwh: PEAK, timeCentsPerHour: PEAK_TIME, durationS: peakMs / 1000 });
    expect(valley.energyWh).toBeCloseTo(mwh(byPeriod["0"]!.mwh) / 1000, 3);
    expect(peak.energyWh).toBeCloseTo(mwh(byPeriod["1"]!.mwh) / 1000, 3);
    // Each part within a cent of its exact value, all of them summing to the fee.
    expect(Math.abs(peak.timeCents - (peakMs * PEAK_TIME) / 3_600_000)).toBeLessThan(1);
    expect(Math.abs(peak.energyCents - (mwh(byPeriod["1"]!.mwh) * PEAK) / 1_000_000)).toBeLessThan(1);
    expect(valley.energyCents + valley.timeCents + peak.energyCents + peak.timeCents + rc.capAdjustmentCents).toBe(s.feeCents);
    expect(rc).toMatchObject({ feeCents: s.feeCents, capAdjustmentCents: 0, energyWh: s.energyWh, payment: { method: "prepaid", capturedCents: s.feeCents } });
  });
});
