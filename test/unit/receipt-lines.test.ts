import { describe, expect, it } from "vitest";
import { advance, exactFee, startMeter, toTariff } from "../../contracts/index.ts";
import { feeLines } from "../../control/internal.ts";
import fc from "fast-check";

const H = 3_600_000;
// UTC: 00:00-08:00 valley, 08:00-20:00 peak, 20:00-24:00 flat; energy and time prices in each.
const tariff = toTariff(1, "UTC", [
  { start: "00:00", end: "08:00", energyCentsPerKwh: 37, timeCentsPerHour: 11 },
  { start: "08:00", end: "20:00", energyCentsPerKwh: 123, timeCentsPerHour: 59 },
  { start: "20:00", end: "24:00", energyCentsPerKwh: 71, timeCentsPerHour: 0 },
]);
const day = Date.UTC(2026, 10, 30);

describe("receipt lines", () => {
  it("split a session across periods into energy and time cents that sum to the fee rounded once", () => {
    // 07:00 to 21:00 at 1.3 kW, read every 17 minutes: three periods.
    let m = startMeter("S", day + 7 * H, 1000);
    for (let t = day + 7 * H + 17 * 60_000, wh = 1000; t <= day + 21 * H; t += 17 * 60_000) m = advance(m, tariff, t, (wh += 1300 * (17 / 60)));
    const { lines, totalCents } = feeLines(m, tariff);
    expect(lines.map((l) => [l.start, l.end])).toEqual([
      ["00:00", "08:00"],
      ["08:00", "20:00"],
      ["20:00", "24:00"],
    ]);
    expect(totalCents).toBe(Number(exactFee(m, tariff).roundHalfUp()));
    expect(lines.reduce((a, l) => a + l.energyCents + l.timeCents, 0)).toBe(totalCents);
    expect(lines[2]!.timeCents).toBe(0);
    // The peak hours carry the most.
    expect(lines[1]!.energyCents).toBeGreaterThan(lines[0]!.energyCents);
    expect(lines[0]!.durationS + lines[1]!.durationS + lines[2]!.durationS).toBe((m.lastTs - m.startTs) / 1000);
  });

  it("any meter: the lines sum exactly to the rounded fee and each part is within a cent of its exact value", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 23 * 60 }), fc.array(fc.tuple(fc.integer({ min: 1, max: 40 * 60_000 }), fc.integer({ min: 0, max: 5000 })), { minLength: 1, maxLength: 30 }), (startMin, steps) => {
        let m = startMeter("S", day + startMin * 60_000, 0);
        let t = m.startTs;
        let wh = 0;
        for (const [dt, dwh] of steps) m = advance(m, tariff, (t += dt), (wh += dwh / 10));
        const { lines, totalCents } = feeLines(m, tariff);
        expect(lines.reduce((a, l) => a + l.energyCents + l.timeCents, 0)).toBe(totalCents);
        expect(totalCents).toBe(Number(exactFee(m, tariff).roundHalfUp()));
        for (const l of lines) {
          const exactEnergy = (l.energyWh * l.energyCentsPerKwh) / 1000;
          expect(Math.abs(l.energyCents - exactEnergy)).toBeLessThan(1.01);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("no meter (a session that never powered on): no lines, nothing", () => {
    expect(feeLines(null, tariff)).toEqual({ lines: [], totalCents: 0 });
  });
});
