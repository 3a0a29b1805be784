import { describe, it, expect } from "vitest";
import { maxCostCents, toTariff, targetSchema, type Target, type Tariff } from "../../contracts/index.ts";

const SH = "Asia/Shanghai";
function tariff(...periods: [start: string, end: string, energyCentsPerKwh: number, timeCentsPerHour: number][]): Tariff {
  return toTariff(1, SH, periods.map(([start, end, energyCentsPerKwh, timeCentsPerHour]) => ({ start, end, energyCentsPerKwh, timeCentsPerHour })));
}
const energyOnly = tariff(["00:00", "08:00", 60, 0], ["08:00", "24:00", 120, 0]); // max 120 c/kWh
const withTime = tariff(["00:00", "08:00", 60, 90], ["08:00", "24:00", 120, 30]); // max 120 c/kWh, max 90 c/h
const flat60 = tariff(["00:00", "24:00", 60, 0]);
const flat100 = tariff(["00:00", "24:00", 100, 0]);
const flat10000 = tariff(["00:00", "24:00", 10000, 0]);
const timeOnly = tariff(["00:00", "12:00", 0, 1], ["12:00", "24:00", 0, 7]);
const free = tariff(["00:00", "24:00", 0, 0]);

const o = { maxSessionS: 7200, maxPowerW: 4000 };

describe("maxCostCents", () => {
  it.each([
    // [name, target, tariff, options, cents]
    ["2000 Wh at max 120 c/kWh", { energyWh: 2000 }, energyOnly, o, 240], // 2 kWh × 120
    ["2000 Wh with time price: + 7200 s at 90 c/h", { energyWh: 2000 }, withTime, o, 420], // 240 + 2 h × 90
    ["2000 Wh, 100 s at 90 c/h", { energyWh: 2000 }, withTime, { maxSessionS: 100, maxPowerW: 4000 }, 243], // 240 + 2.5 = 242.5 up
    ["2000 Wh with no session time", { energyWh: 2000 }, withTime, { maxSessionS: 0, maxPowerW: 4000 }, 240],
    ["1 Wh at 60 c/kWh holds 1, not 0", { energyWh: 1 }, flat60, o, 1], // 0.06
    ["1000 Wh at 60 c/kWh holds exactly 60", { energyWh: 1000 }, flat60, o, 60],
    ["1000.001 Wh at 60 c/kWh holds 61", { energyWh: 1000.001 }, flat60, o, 61], // 60.00006
    ["812.5 Wh at 120 c/kWh", { energyWh: 812.5 }, energyOnly, o, 98], // 97.5 up
    ["1.1 + 2.2 Wh at 10000 c/kWh holds 33, not 34", { energyWh: 1.1 + 2.2 }, flat10000, o, 33], // 3.3 Wh × 10 c/Wh
    ["12.345 Wh at 1000 c/kWh", { energyWh: 12.345 }, tariff(["00:00", "24:00", 1000, 0]), o, 13], // 12.345 up
    ["1000000 Wh at 120 c/kWh", { energyWh: 1_000_000 }, energyOnly, o, 120_000],
    ["energy target on a free tariff holds 1, never 0", { energyWh: 5000 }, free, o, 1],
    ["duration target on a free tariff holds 1, never 0", { durationS: 60 }, free, o, 1],
    ["energy target on a time-only tariff", { energyWh: 5000 }, timeOnly, o, 14], // 2 h × 7
    ["1800 s at 4000 W, 120 c/kWh", { durationS: 1800 }, energyOnly, o, 240], // 2000 Wh × 0.12
    ["1800 s at 4000 W with time price", { durationS: 1800 }, withTime, o, 285], // 240 + 0.5 h × 90
    ["duration ignores maxSessionS", { durationS: 1800 }, withTime, { maxSessionS: 1, maxPowerW: 4000 }, 285],
    ["1 s at 4000 W, 120 c/kWh holds 1", { durationS: 1 }, energyOnly, o, 1], // 4000/3600 Wh × 0.12 = 0.1333
    ["30 s at 3600 W, 100 c/kWh holds exactly 3", { durationS: 30 }, flat100, { maxSessionS: 7200, maxPowerW: 3600 }, 3], // 30 Wh × 0.1
    ["31 s at 3600 W, 100 c/kWh", { durationS: 31 }, flat100, { maxSessionS: 7200, maxPowerW: 3600 }, 4], // 3.1 up
    ["7 days at 4000 W, 120 c/kWh", { durationS: 7 * 86_400 }, energyOnly, o, 80_640], // 672000 Wh × 0.12
    ["1 s on a time-only tariff", { durationS: 1 }, timeOnly, o, 1], // 7/3600
    ["3600 s on a time-only tariff", { durationS: 3600 }, timeOnly, o, 7],
    ["amount target", { amountCents: 1234 }, withTime, o, 1234],
    ["amount target of 1", { amountCents: 1 }, energyOnly, o, 1],
    ["amount target on a free tariff", { amountCents: 500 }, free, o, 500],
  ] as [string, Target, Tariff, typeof o, number][])("%s", (_name, target, t, opts, cents) => {
    expect(targetSchema.safeParse(target).success).toBe(true); // only targets the API accepts
    expect(maxCostCents(target, t, opts)).toBe(cents);
  });

  it("refuses targets smaller than 1 Wh, 1 s or 1 cent (their holds would round to nothing)", () => {
    for (const t of [{ energyWh: 0.999 }, { energyWh: 1e-9 }, { durationS: 0 }, { durationS: 0.5 }, { amountCents: 0 }])
      expect(targetSchema.safeParse(t).success).toBe(false);
  });

  it("uses the highest price whichever period it is in", () => {
    const nightDear = tariff(["00:00", "08:00", 150, 0], ["08:00", "24:00", 60, 0]);
    expect(maxCostCents({ energyWh: 2000 }, nightDear, o)).toBe(300);
  });
});
