import { describe, it, expect } from "vitest";
import {
  Rational,
  toTariff,
  startMeter,
  advance,
  exactFee,
  billedCents,
  deliveredMwh,
  elapsedMs,
  meterToJson,
  meterFromJson,
  meterJsonSchema,
  type Meter,
  type Tariff,
} from "../../contracts/index.ts";

const H = 3_600_000;
const MIN = 60_000;
const SH = "Asia/Shanghai";
// Local 2026-01-15 08:00 in Shanghai (UTC+8) = 2026-01-15T00:00Z; local midnight 2026-01-16 = 2026-01-15T16:00Z.
const E = Date.UTC(2026, 0, 15, 0);
const M = Date.UTC(2026, 0, 15, 16);

function dayNight(night: number, day: number, nightPerH = 0, dayPerH = 0, tz = SH): Tariff {
  return toTariff(1, tz, [
    { start: "00:00", end: "08:00", energyCentsPerKwh: night, timeCentsPerHour: nightPerH },
    { start: "08:00", end: "24:00", energyCentsPerKwh: day, timeCentsPerHour: dayPerH },
  ]);
}

/** Runs a meter from (start, startWh) over readings [ts, wh]. */
function run(t: Tariff, start: number, startWh: number, readings: [number, number][]): Meter {
  let m = startMeter("S-1", start, startWh);
  for (const [ts, wh] of readings) m = advance(m, t, ts, wh);
  return m;
}

/** byPeriod as plain strings for table comparison: { period: [mWh, ms] }. */
function usage(m: Meter): Record<number, [string, number]> {
  const out: Record<number, [string, number]> = {};
  for (const [k, v] of m.byPeriod) out[k] = [v.mwh.toString(), v.ms];
  return out;
}

describe("startMeter", () => {
  it("starts empty at the start register, in mWh", () => {
    const m = startMeter("S-1", E, 125034.2);
    expect(m).toEqual({ sessionId: "S-1", startTs: E, startMwh: 125034200n, lastTs: E, lastMwh: 125034200n, byPeriod: new Map() });
    expect(exactFee(m, dayNight(60, 100)).toString()).toBe("0");
    expect(deliveredMwh(m)).toBe(0n);
    expect(elapsedMs(m)).toBe(0);
  });
});

describe("advance and exactFee", () => {
  it.each([
    {
      name: "1000 Wh half before, half after 08:00: 500 Wh at 60 + 500 Wh at 100",
      t: dayNight(60, 100),
      start: E - 30 * MIN, startWh: 0,
      readings: [[E + 30 * MIN, 1000]],
      usage: { 0: ["500000", 30 * MIN], 1: ["500000", 30 * MIN] },
      fee: "80", // 500 × 0.06 + 500 × 0.10 = 30 + 50
      billed: 80,
    },
    {
      name: "a reading exactly at 08:00 splits the same way",
      t: dayNight(60, 100),
      start: E - 30 * MIN, startWh: 0,
      readings: [[E, 500], [E + 30 * MIN, 1000]],
      usage: { 0: ["500000", 30 * MIN], 1: ["500000", 30 * MIN] },
      fee: "80",
      billed: 80,
    },
    {
      name: "1000 Wh over 60 min before and 30 min after 08:00: 2/3 and 1/3",
      t: dayNight(60, 100),
      start: E - 60 * MIN, startWh: 0,
      readings: [[E + 30 * MIN, 1000]],
      usage: { 0: ["2000000/3", 60 * MIN], 1: ["1000000/3", 30 * MIN] },
      fee: "220/3", // 666.67 Wh × 0.06 = 40, 333.33 Wh × 0.10 = 33.33
      billed: 73,
    },
    {
      name: "1 ms of 1000 Wh before 08:00 (interval 07:59:59.999-08:00:00.999)",
      t: dayNight(60, 100),
      start: E - 1, startWh: 0,
      readings: [[E + 999, 1000]],
      usage: { 0: ["1000", 1], 1: ["999000", 999] },
      fee: "2499/25", // 1 Wh × 0.06 + 999 Wh × 0.10 = 0.06 + 99.9 = 99.96
      billed: 100,
    },
    {
      name: "200 Wh over 23:00-01:00 local: 100 Wh day + 100 Wh night",
      t: dayNight(60, 100),
      start: M - H, startWh: 5000.5,
      readings: [[M + H, 5200.5]],
      usage: { 0: ["100000", H], 1: ["100000", H] },
      fee: "16", // 100 × 0.10 + 100 × 0.06
      billed: 16,
    },
    {
      name: "three readings across midnight, register with a decimal",
      t: dayNight(60, 100),
      start: M - 30 * MIN, startWh: 125034.2,
      readings: [[M - 10 * MIN, 125035.3], [M + 10 * MIN, 125037.5], [M + 30 * MIN, 125038.6]],
      // 1.1 Wh day; 2.2 Wh split 10/10 min: 1.1 day + 1.1 night; 1.1 Wh night
      usage: { 0: ["2200", 30 * MIN], 1: ["2200", 30 * MIN] },
      fee: "44/125", // 2.2 × 0.06 + 2.2 × 0.10 = 0.132 + 0.22 = 0.352
      billed: 0,
    },
    {
      name: "time charge: 20 min at 30 c/h + 40 min at 90 c/h",
      t: dayNight(0, 0, 30, 90),
      start: E - 20 * MIN, startWh: 10,
      readings: [[E + 40 * MIN, 10]],
      usage: { 0: ["0", 20 * MIN], 1: ["0", 40 * MIN] },
      fee: "70", // 10 + 60
      billed: 70,
    },
    {
      name: "time charge across midnight: 45 min at 90 c/h + 15 min at 30 c/h",
      t: dayNight(0, 0, 30, 90),
      start: M - 45 * MIN, startWh: 0,
      readings: [[M + 15 * MIN, 0]],
      usage: { 0: ["0", 15 * MIN], 1: ["0", 45 * MIN] },
      fee: "75", // 67.5 + 7.5
      billed: 75,
    },
    {
      name: "energy and time together",
      t: dayNight(60, 100, 30, 90),
      start: E - 30 * MIN, startWh: 0,
      readings: [[E + 30 * MIN, 1000]],
      usage: { 0: ["500000", 30 * MIN], 1: ["500000", 30 * MIN] },
      fee: "140", // 30 + 50 energy, 15 + 45 time
      billed: 140,
    },
    {
      name: "1 s of time at 1 c/h",
      t: dayNight(0, 0, 1, 1),
      start: E, startWh: 0,
      readings: [[E + 1000, 0]],
      usage: { 1: ["0", 1000] },
      fee: "1/3600",
      billed: 0,
    },
    // Rounding happens once, on the total.
    {
      name: "1.5 c + 2.5 c bills 4 (rounding each period would give 2 + 3 = 5)",
      t: dayNight(60, 100),
      start: E - H, startWh: 0,
      readings: [[E, 25], [E + H, 50]],
      usage: { 0: ["25000", H], 1: ["25000", H] },
      fee: "4", // 25 × 0.06 + 25 × 0.10
      billed: 4,
    },
    {
      name: "0.4 c + 0.4 c of time bills 1 (rounding each period would give 0)",
      t: dayNight(0, 0, 1, 1),
      start: E - 24 * MIN, startWh: 0,
      readings: [[E + 24 * MIN, 0]],
      usage: { 0: ["0", 24 * MIN], 1: ["0", 24 * MIN] },
      fee: "4/5",
      billed: 1,
    },
    {
      name: "0.25 c + 0.25 c = exactly 0.5 bills 1 (rounding each period would give 0)",
      t: dayNight(0, 0, 1, 1),
      start: E - 15 * MIN, startWh: 0,
      readings: [[E + 15 * MIN, 0]],
      usage: { 0: ["0", 15 * MIN], 1: ["0", 15 * MIN] },
      fee: "1/2",
      billed: 1,
    },
    {
      name: "1.3 c + 1.3 c bills 3 (rounding each period would give 1 + 1 = 2)",
      t: dayNight(0, 0, 13, 13),
      start: E - 6 * MIN, startWh: 0,
      readings: [[E + 6 * MIN, 0]], // 6 min at 13 c/h = 1.3 c
      usage: { 0: ["0", 6 * MIN], 1: ["0", 6 * MIN] },
      fee: "13/5",
      billed: 3,
    },
    {
      name: "exactly x.5: 25 Wh at 60 c/kWh = 1.5 bills 2",
      t: dayNight(60, 100),
      start: E - H, startWh: 0,
      readings: [[E - 1, 25]],
      usage: { 0: ["25000", H - 1] },
      fee: "3/2",
      billed: 2,
    },
    {
      name: "just below x.5: 24.999 Wh at 60 c/kWh = 1.49994 bills 1",
      t: dayNight(60, 100),
      start: E - H, startWh: 0,
      readings: [[E - 1, 24.999]],
      usage: { 0: ["24999", H - 1] },
      fee: "74997/50000",
      billed: 1,
    },
    {
      name: "just below 0.5: 4.999 Wh at 100 c/kWh = 0.4999 bills 0",
      t: dayNight(60, 100),
      start: E, startWh: 0,
      readings: [[E + H, 4.999]],
      usage: { 1: ["4999", H] },
      fee: "4999/10000",
      billed: 0,
    },
    {
      name: "halves from a fractional split: 1 Wh over 1/3 night, 2/3 day at 150/75",
      t: dayNight(150, 75),
      start: E - 10 * MIN, startWh: 0,
      readings: [[E + 20 * MIN, 1]],
      usage: { 0: ["1000/3", 10 * MIN], 1: ["2000/3", 20 * MIN] },
      fee: "1/10", // 1/3 Wh × 0.15 + 2/3 Wh × 0.075 = 0.05 + 0.05
      billed: 0,
    },
  ] as const)("$name", ({ t, start, startWh, readings, usage: u, fee, billed }) => {
    const m = run(t, start, startWh, readings.map(([a, b]) => [a, b]));
    expect(usage(m)).toEqual(u);
    const exact = exactFee(m, t);
    expect(exact.toString()).toBe(fee);
    expect(billedCents(exact, null)).toBe(billed);
  });

  it("does not change the meter it advances", () => {
    const t = dayNight(60, 100);
    const m0 = startMeter("S-1", E, 0);
    const m1 = advance(m0, t, E + H, 10);
    const m2 = advance(m1, t, E + 2 * H, 20);
    expect(m0.byPeriod.size).toBe(0);
    expect(m0.lastTs).toBe(E);
    expect(usage(m1)).toEqual({ 1: ["10000", H] });
    expect(usage(m2)).toEqual({ 1: ["20000", 2 * H] });
  });
});

describe("meter across a DST change (Europe/Berlin, 2026-10-25 03:00 CEST -> 02:00 CET at 01:00Z)", () => {
  it("prices the repeated hour by its wall clock both times", () => {
    const t = toTariff(1, "Europe/Berlin", [
      { start: "00:00", end: "02:30", energyCentsPerKwh: 50, timeCentsPerHour: 0 },
      { start: "02:30", end: "24:00", energyCentsPerKwh: 80, timeCentsPerHour: 0 },
    ]);
    // 00:00Z-02:00Z = 02:00 CEST .. 03:00 CET: 02:00-02:30 (p0), 02:30-03:00 (p1), 02:00-02:30 (p0), 02:30-03:00 (p1)
    const m = run(t, Date.UTC(2026, 9, 25, 0), 0, [[Date.UTC(2026, 9, 25, 2), 1200]]);
    expect(usage(m)).toEqual({ 0: ["600000", H], 1: ["600000", H] });
    expect(exactFee(m, t).toString()).toBe("78"); // 600 × 0.05 + 600 × 0.08 = 30 + 48
  });
});

describe("repeated, older and backwards readings", () => {
  const t = dayNight(60, 100, 0, 90);
  const m1 = run(t, E, 100, [[E + 10 * MIN, 150]]);

  it.each([
    ["the same reading again", E + 10 * MIN, 150],
    ["the same time with a higher register", E + 10 * MIN, 999],
    ["an older time with a higher register", E + 5 * MIN, 999],
    ["an older time with a lower register", E + 5 * MIN, 120],
    ["the start time", E, 500],
    ["before the start", E - H, 500],
  ])("%s changes nothing", (_name, ts, wh) => {
    const m2 = advance(m1, t, ts, wh);
    expect(m2).toBe(m1);
    expect(exactFee(m2, t).toString()).toBe("20"); // 50 Wh × 0.10 = 5, 10 min × 90 c/h = 15
  });

  it.each([
    {
      name: "a register going back adds no energy; a later higher one counts from the highest seen",
      readings: [[E + 10 * MIN, 150], [E + 20 * MIN, 140], [E + 30 * MIN, 160]],
      // +50, +0 (140 < 150), +10 (160 - 150); time keeps counting
      mwh: 60000n, usage: { 1: ["60000", 30 * MIN] }, fee: "51", // 60 Wh × 0.10 + 30 min × 90 c/h = 6 + 45
    },
    {
      name: "a register staying below the highest adds nothing",
      readings: [[E + 10 * MIN, 150], [E + 20 * MIN, 140], [E + 30 * MIN, 145], [E + 40 * MIN, 150]],
      mwh: 50000n, usage: { 1: ["50000", 40 * MIN] }, fee: "65", // 5 + 60
    },
    {
      name: "a register below the start adds nothing",
      readings: [[E + 10 * MIN, 90], [E + 20 * MIN, 101]],
      // the second interval counts 101 - 100 = 1 Wh, all in its own 10 minutes
      mwh: 1000n, usage: { 1: ["1000", 20 * MIN] }, fee: "301/10", // 0.1 + 30
    },
    {
      name: "a repeated reading between new ones is ignored",
      readings: [[E + 10 * MIN, 150], [E + 10 * MIN, 150], [E + 20 * MIN, 200], [E + 10 * MIN, 150]],
      mwh: 100000n, usage: { 1: ["100000", 20 * MIN] }, fee: "40", // 10 + 30
    },
  ] as const)("$name", ({ readings, mwh, usage: u, fee }) => {
    const m = run(t, E, 100, readings.map(([a, b]) => [a, b]));
    expect(deliveredMwh(m)).toBe(mwh);
    expect(usage(m)).toEqual(u);
    expect(exactFee(m, t).toString()).toBe(fee);
  });

  it("tracks the highest register and the last time", () => {
    const m = run(t, E, 100, [[E + 10 * MIN, 150], [E + 20 * MIN, 140]]);
    expect(m.lastMwh).toBe(150000n);
    expect(m.lastTs).toBe(E + 20 * MIN);
    expect(elapsedMs(m)).toBe(20 * MIN);
  });
});

describe("billedCents", () => {
  it.each([
    // [exact fee, cap, billed]
    ["80", null, 80],
    ["161/2", null, 81], // 80.5 rounds up
    ["1609/20", null, 80], // 80.45
    ["1611/20", null, 81], // 80.55
    ["161/2", 81, 81],
    ["161/2", 80, 80], // amount target of 80: never above it
    ["161/2", 200, 81],
    ["220/3", 70, 70], // 73.33 capped by credit
    ["80", 79, 79],
    ["80", 80, 80],
    ["0", 0, 0],
    ["1/2", null, 1],
    ["499/1000", null, 0],
    ["1/2", 0, 0],
    ["19999999/2", null, 10000000], // 9999999.5
  ] as const)("billedCents(%s, %s) = %s", (exact, cap, billed) => {
    expect(billedCents(Rational.parse(exact), cap)).toBe(billed);
  });
});

describe("meter JSON round trip", () => {
  const t = dayNight(60, 100, 7, 11);
  // 2000 Wh over 07:00-08:30 local: 4000/3 Wh night, 2000/3 Wh day
  const m = run(t, E - H, 125034.2, [[E + 30 * MIN, 127034.2]]);

  it("writes exact strings", () => {
    expect(meterToJson(m)).toEqual({
      sessionId: "S-1",
      startTs: E - H,
      startMwh: "125034200",
      lastTs: E + 30 * MIN,
      lastMwh: "127034200",
      byPeriod: { "0": { mwh: "4000000/3", ms: H }, "1": { mwh: "2000000/3", ms: 30 * MIN } },
    });
  });

  it("reads back a meter with the same exact fee", () => {
    const back = meterFromJson(meterJsonSchema.parse(JSON.parse(JSON.stringify(meterToJson(m)))));
    expect(back).toEqual(m);
    // energy 4000/3 × 0.06 + 2000/3 × 0.10 = 80 + 200/3; time 1 h × 7 + 0.5 h × 11 = 12.5
    // 92.5 + 200/3 = 555/6 + 400/6 = 955/6
    expect(exactFee(back, t).toString()).toBe("955/6");
    expect(exactFee(m, t).toString()).toBe("955/6");
  });

  it("keeps going after the round trip exactly as the original", () => {
    const back = meterFromJson(meterJsonSchema.parse(JSON.parse(JSON.stringify(meterToJson(m)))));
    const a = advance(m, t, E + 45 * MIN, 127100.3);
    const b = advance(back, t, E + 45 * MIN, 127100.3);
    expect(meterToJson(b)).toEqual(meterToJson(a));
    expect(exactFee(b, t).cmp(exactFee(a, t))).toBe(0);
  });

  it.each([
    [{ sessionId: "S", startTs: 0, startMwh: 0, lastTs: 0, lastMwh: "0", byPeriod: {} }],
    [{ sessionId: "S", startTs: 0, startMwh: "0", lastTs: 0, lastMwh: "0", byPeriod: { "0": { mwh: 1, ms: 0 } } }],
    [{ sessionId: "S", startTs: 0, startMwh: "0", lastTs: 0, byPeriod: {} }],
  ])("meterJsonSchema rejects %j", (j) => {
    expect(meterJsonSchema.safeParse(j).success).toBe(false);
  });
});

describe("exactFee against a tariff lacking the period", () => {
  it("throws a RangeError", () => {
    const m = run(dayNight(60, 100), E, 0, [[E + H, 1]]);
    const flat = toTariff(2, SH, [{ start: "00:00", end: "24:00", energyCentsPerKwh: 60, timeCentsPerHour: 0 }]);
    expect(() => exactFee(m, flat)).toThrow(RangeError);
  });
});
