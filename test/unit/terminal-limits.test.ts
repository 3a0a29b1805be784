import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { maxCostCents, maxPrices, Rational, terminalLimits, toTariff, whToMwh, type Target, type Tariff } from "../../contracts/index.ts";

const SH = "Asia/Shanghai";
function tariff(...periods: [start: string, end: string, energyCentsPerKwh: number, timeCentsPerHour: number][]): Tariff {
  return toTariff(1, SH, periods.map(([start, end, energyCentsPerKwh, timeCentsPerHour]) => ({ start, end, energyCentsPerKwh, timeCentsPerHour })));
}
const energyOnly = tariff(["00:00", "08:00", 60, 0], ["08:00", "24:00", 120, 0]); // max 120 c/kWh
const withTime = tariff(["00:00", "08:00", 60, 90], ["08:00", "24:00", 120, 30]); // max 120 c/kWh, max 90 c/h
const timeOnly = tariff(["00:00", "12:00", 0, 10], ["12:00", "24:00", 0, 60]); // max 60 c/h
const free = tariff(["00:00", "24:00", 0, 0]);
const o = { maxSessionS: 43_200, maxPowerW: 4000 };

/** What the terminal can deliver before a limit stops it, at the highest prices: cents, exact. */
function worstCost(l: { limitWh?: number; limitS: number }, t: Tariff): Rational {
  const p = maxPrices(t);
  // With no energy limit the energy is bounded only by the terminal's power over limitS.
  const wh = l.limitWh !== undefined ? new Rational(whToMwh(l.limitWh), 1000n) : Rational.of(o.maxPowerW * l.limitS, 3600);
  const energy = p.energyCentsPerKwh === 0 ? Rational.ZERO : wh.mul(Rational.of(p.energyCentsPerKwh, 1000));
  return energy.add(Rational.of(l.limitS * p.timeCentsPerHour, 3600));
}

describe("terminalLimits", () => {
  it.each<[string, Target, number, Tariff, { limitWh?: number; limitS: number }]>([
    // A prepaid hold always pays for the target's own limits (that is how it is computed).
    ["energy target, its hold", { energyWh: 2000 }, maxCostCents({ energyWh: 2000 }, energyOnly, o), energyOnly, { limitWh: 2000, limitS: 43_200 }],
    ["energy target with time price, its hold", { energyWh: 2000 }, maxCostCents({ energyWh: 2000 }, withTime, o), withTime, { limitWh: 2000, limitS: 43_200 }],
    ["duration target, its hold", { durationS: 1800 }, maxCostCents({ durationS: 1800 }, withTime, o), withTime, { limitS: 1800 }],
    ["duration past the longest session", { durationS: 86_400 }, 1_000_000, energyOnly, { limitS: 43_200 }],
    // An amount on an energy-only tariff: the energy the amount buys at the highest price.
    ["500 c at 120 c/kWh", { amountCents: 500 }, 500, energyOnly, { limitWh: 4166.666, limitS: 43_200 }],
    ["1 c at 120 c/kWh", { amountCents: 1 }, 1, energyOnly, { limitWh: 8.333, limitS: 43_200 }],
    // Time-only: the seconds the amount buys.
    ["500 c at 60 c/h", { amountCents: 500 }, 500, timeOnly, { limitS: 30_000 }],
    ["a big amount at 60 c/h: the longest session", { amountCents: 1_000_000 }, 1_000_000, timeOnly, { limitS: 43_200 }],
    // Both prices: time needs 12 h × 90 c/h = 1080 c; more than half of 500, so half each.
    ["500 c with time price", { amountCents: 500 }, 500, withTime, { limitWh: 2083.333, limitS: 10_000 }],
    // Time needs 1080 c, at most half of 5000: it gets that, energy the other 3920 c.
    ["5000 c with time price", { amountCents: 5000 }, 5000, withTime, { limitWh: 32_666.666, limitS: 43_200 }],
    ["an amount on a free tariff", { amountCents: 5 }, 5, free, { limitS: 43_200 }],
    // Postpaid credit below what the target needs: the target shrinks to what the credit pays.
    ["energy target, 100 c of credit", { energyWh: 2000 }, 100, energyOnly, { limitWh: 833.333, limitS: 43_200 }],
    ["energy target that needs under half the credit's energy side", { energyWh: 500 }, 1000, withTime, { limitWh: 500, limitS: 37_600 }], // 1000 − 60 = 940 c of time
    ["duration target, 10 c of credit at 120 c/kWh", { durationS: 1800 }, 10, energyOnly, { limitWh: 83.333, limitS: 1800 }],
    ["duration target, 10 c of credit at 60 c/h", { durationS: 1800 }, 10, timeOnly, { limitS: 600 }],
    ["energy target on a time-only tariff, 10 c of credit", { energyWh: 2000 }, 10, timeOnly, { limitWh: 2000, limitS: 600 }],
  ])("%s", (_name, target, cap, t, expected) => {
    const l = terminalLimits(target, cap, t, o);
    expect(l).toStrictEqual(expected);
    expect(worstCost(l, t).cmp(Rational.of(cap))).toBeLessThanOrEqual(0);
  });

  it("holds for any tariff, target and cap: the limits never deliver more than the cap pays, nor past the target", () => {
    const price = fc.integer({ min: 0, max: 1_000_000 });
    const target = fc.oneof(
      fc.integer({ min: 1, max: 1_000_000_000 }).map((mwh): Target => ({ energyWh: mwh / 1000 })),
      fc.integer({ min: 1, max: 7 * 86_400 }).map((durationS): Target => ({ durationS })),
      fc.integer({ min: 1, max: 100_000_000 }).map((amountCents): Target => ({ amountCents })),
    );
    fc.assert(
      fc.property(price, price, price, price, target, fc.integer({ min: 1, max: 100_000_000 }), (e1, t1, e2, t2, tg, credit) => {
        const t = tariff(["00:00", "08:00", e1, t1], ["08:00", "24:00", e2, t2]);
        // As the service computes it: the hold (prepaid), or that bounded by the credit left (postpaid).
        const cap = Math.min(maxCostCents(tg, t, o), credit);
        const l = terminalLimits(tg, cap, t, o);
        expect(Number.isInteger(l.limitS) && l.limitS >= 1 && l.limitS <= o.maxSessionS).toBe(true);
        if ("durationS" in tg) expect(l.limitS).toBeLessThanOrEqual(tg.durationS);
        if ("energyWh" in tg) expect(l.limitWh).toBeLessThanOrEqual(Math.max(tg.energyWh, 0.001));
        if (l.limitWh !== undefined) expect(Number.isInteger(Math.round(l.limitWh * 1000)) && l.limitWh >= 0.001).toBe(true);
        // Limits clamped up to 1 mWh or 1 s are the only way past the cap (a cap of a cent or two at absurd prices).
        const clamped = l.limitS === 1 || l.limitWh === 0.001;
        if (!clamped) expect(worstCost(l, t).cmp(Rational.of(cap))).toBeLessThanOrEqual(0);
      }),
      { numRuns: 2000 },
    );
  });
});
