import fc from "fast-check";
import { describe, it, expect } from "vitest";
import {
  tariffPeriodsSchema,
  toTariff,
  periodInputs,
  segments,
  maxPrices,
  type Tariff,
  type Segment,
  instantOf,
  localTime,
} from "../../contracts/index.ts";

const H = 3_600_000;
const MIN = 60_000;
const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0) => Date.UTC(y, mo - 1, d, h, mi, s, ms);
const iso = (ts: number) => new Date(ts).toISOString();

type P = { start: string; end: string; energyCentsPerKwh?: number; timeCentsPerHour?: number };
function tariff(tz: string, ...periods: P[]): Tariff {
  return toTariff(
    1,
    tz,
    periods.map((p) => ({ energyCentsPerKwh: 0, timeCentsPerHour: 0, ...p })),
  );
}
const SH = "Asia/Shanghai"; // UTC+8 all year
const BER = "Europe/Berlin"; // CET +1 / CEST +2; 2026-03-29 01:00Z forward, 2026-10-25 01:00Z back

const dayNight = (tz: string) => tariff(tz, { start: "00:00", end: "08:00" }, { start: "08:00", end: "24:00" });
const flat = (tz: string) => tariff(tz, { start: "00:00", end: "24:00" });
/** A boundary inside the hour Berlin skips in spring and repeats in autumn. */
const in2to3 = (tz: string) => tariff(tz, { start: "00:00", end: "02:30" }, { start: "02:30", end: "24:00" });
const threeWay = (tz: string) =>
  tariff(tz, { start: "00:00", end: "02:00" }, { start: "02:00", end: "03:00" }, { start: "03:00", end: "24:00" });

/** Segments as readable ISO triples, for table comparison. */
const show = (ss: Segment[]) => ss.map((s) => [iso(s.from), iso(s.to), s.period] as const);

/** Minute of the local day, straight from Intl (independent of zoned.ts). */
function wallMinute(ts: number, tz: string): number {
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone: tz, hourCycle: "h23", hour: "2-digit", minute: "2-digit" }).formatToParts(new Date(ts));
  const v = (t: string) => Number(parts.find((p) => p.type === t)!.value);
  return v("hour") * 60 + v("minute");
}
function periodAt(t: Tariff, ts: number): number {
  const m = wallMinute(ts, t.timezone);
  return t.periods.findIndex((p) => m >= p.startMin && m < p.endMin);
}

const p = (start: string, end: string, energyCentsPerKwh = 60, timeCentsPerHour?: number) =>
  timeCentsPerHour === undefined ? { start, end, energyCentsPerKwh } : { start, end, energyCentsPerKwh, timeCentsPerHour };

/** A complete period, as toTariff takes it. */
const pt = (start: string, end: string, energyCentsPerKwh: number, timeCentsPerHour: number) => ({ start, end, energyCentsPerKwh, timeCentsPerHour });

describe("tariffPeriodsSchema", () => {
  it.each([
    ["day/night", [p("00:00", "08:00"), p("08:00", "24:00", 100)]],
    ["one period", [p("00:00", "24:00")]],
    ["three periods", [p("00:00", "07:59"), p("07:59", "23:59", 100, 30), p("23:59", "24:00", 0)]],
    ["one-minute periods at the ends", [p("00:00", "00:01"), p("00:01", "24:00")]],
    ["48 half hours", Array.from({ length: 48 }, (_, i) => p(hm(i * 30), hm(i * 30 + 30)))],
  ])("accepts %s", (_name, periods) => {
    const r = tariffPeriodsSchema.safeParse(periods);
    expect(r.success, JSON.stringify(r.error?.issues)).toBe(true);
  });

  it("defaults timeCentsPerHour to 0", () => {
    const r = tariffPeriodsSchema.parse([p("00:00", "24:00")]);
    expect(r[0]!.timeCentsPerHour).toBe(0);
  });

  it.each([
    // [name, periods, expected issue paths]
    ["a gap", [p("00:00", "08:00"), p("09:00", "24:00")], [[1, "start"]]],
    ["a one-minute gap", [p("00:00", "08:00"), p("08:01", "24:00")], [[1, "start"]]],
    ["an overlap", [p("00:00", "08:00"), p("07:00", "24:00")], [[1, "start"]]],
    ["a one-minute overlap", [p("00:00", "08:00"), p("07:59", "24:00")], [[1, "start"]]],
    ["a first period not at 00:00", [p("00:01", "24:00")], [[0, "start"]]],
    ["a last period ending 23:59", [p("00:00", "08:00"), p("08:00", "23:59")], [[1, "end"]]],
    ["a last period ending early", [p("00:00", "08:00"), p("08:00", "12:00")], [[1, "end"]]],
    ["end == start", [p("00:00", "08:00"), p("08:00", "08:00"), p("08:00", "24:00")], [[1, "end"]]],
    ["end < start", [p("00:00", "08:00"), p("08:00", "06:00"), p("06:00", "24:00")], [[1, "end"]]],
    ["a period starting at 24:00", [p("00:00", "24:00"), p("24:00", "24:00")], [[1, "end"]]],
    ["24:30", [p("00:00", "08:00"), p("08:00", "24:30")], [[1, "end"]]],
    ["8:00 (one digit)", [p("00:00", "8:00"), p("8:00", "24:00")], [[0, "end"], [1, "start"]]],
    ["12:60", [p("00:00", "12:60"), p("12:60", "24:00")], [[0, "end"], [1, "start"]]],
    ["25:00", [p("00:00", "25:00")], [[0, "end"]]],
    ["08:00:00", [p("00:00", "08:00:00"), p("08:00", "24:00")], [[0, "end"]]],
    ["negative price", [p("00:00", "24:00", -1)], [[0, "energyCentsPerKwh"]]],
    ["fractional price", [p("00:00", "24:00", 1.5)], [[0, "energyCentsPerKwh"]]],
    ["fractional time price", [p("00:00", "24:00", 1, 0.5)], [[0, "timeCentsPerHour"]]],
    ["no end", [{ start: "00:00", energyCentsPerKwh: 1 }], [[0, "end"]]],
    ["no periods", [], [[]]],
    ["49 periods", Array.from({ length: 49 }, (_, i) => p(hm(i * 29), i === 48 ? "24:00" : hm(i * 29 + 29))), [[]]],
  ])("rejects %s", (_name, periods, paths) => {
    const r = tariffPeriodsSchema.safeParse(periods);
    expect(r.success).toBe(false);
    const got = (r.error?.issues ?? []).map((i) => i.path).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    expect(got).toEqual(paths);
  });
});

function hm(min: number): string {
  return `${String(Math.floor(min / 60)).padStart(2, "0")}:${String(min % 60).padStart(2, "0")}`;
}

describe("toTariff / periodInputs / maxPrices", () => {
  it("converts to minutes and back", () => {
    const input = [pt("00:00", "07:30", 60, 10), pt("07:30", "24:00", 120, 0)];
    const t = toTariff(3, SH, input);
    expect(t).toEqual({
      version: 3,
      timezone: SH,
      periods: [
        { startMin: 0, endMin: 450, energyCentsPerKwh: 60, timeCentsPerHour: 10 },
        { startMin: 450, endMin: 1440, energyCentsPerKwh: 120, timeCentsPerHour: 0 },
      ],
    });
    expect(periodInputs(t)).toEqual(input);
  });

  it.each([
    [[pt("00:00", "08:00", 60, 90), pt("08:00", "24:00", 120, 30)], 120, 90],
    [[pt("00:00", "24:00", 0, 0)], 0, 0],
  ])("maxPrices takes each maximum separately", (periods, e, tm) => {
    expect(maxPrices(toTariff(1, SH, periods))).toEqual({ energyCentsPerKwh: e, timeCentsPerHour: tm });
  });
});

describe("segments in Asia/Shanghai (UTC+8)", () => {
  // Local 2026-01-15 08:00 = 2026-01-15T00:00Z; local midnight 2026-01-16 = 2026-01-15T16:00Z.
  const E = utc(2026, 1, 15, 0);
  const M = utc(2026, 1, 15, 16);
  it.each([
    ["07:30-08:30 local splits at 08:00", E - 30 * MIN, E + 30 * MIN, [
      ["2026-01-14T23:30:00.000Z", "2026-01-15T00:00:00.000Z", 0],
      ["2026-01-15T00:00:00.000Z", "2026-01-15T00:30:00.000Z", 1],
    ]],
    ["1 ms either side of 08:00", E - 1, E + 1, [
      ["2026-01-14T23:59:59.999Z", "2026-01-15T00:00:00.000Z", 0],
      ["2026-01-15T00:00:00.000Z", "2026-01-15T00:00:00.001Z", 1],
    ]],
    ["ending exactly at 08:00", E - H, E, [["2026-01-14T23:00:00.000Z", "2026-01-15T00:00:00.000Z", 0]]],
    ["starting exactly at 08:00", E, E + H, [["2026-01-15T00:00:00.000Z", "2026-01-15T01:00:00.000Z", 1]]],
    ["1 ms before 08:00 only", E - 1, E, [["2026-01-14T23:59:59.999Z", "2026-01-15T00:00:00.000Z", 0]]],
    ["23:00-01:00 local crosses midnight into period 0", M - H, M + H, [
      ["2026-01-15T15:00:00.000Z", "2026-01-15T16:00:00.000Z", 1],
      ["2026-01-15T16:00:00.000Z", "2026-01-15T17:00:00.000Z", 0],
    ]],
    ["1 ms either side of midnight", M - 1, M + 1, [
      ["2026-01-15T15:59:59.999Z", "2026-01-15T16:00:00.000Z", 1],
      ["2026-01-15T16:00:00.000Z", "2026-01-15T16:00:00.001Z", 0],
    ]],
    ["a whole local day", M, M + 24 * H, [
      ["2026-01-15T16:00:00.000Z", "2026-01-16T00:00:00.000Z", 0],
      ["2026-01-16T00:00:00.000Z", "2026-01-16T16:00:00.000Z", 1],
    ]],
    ["07:59:59.999 to next day 08:00:00.001", E - 1, E + 24 * H + 1, [
      ["2026-01-14T23:59:59.999Z", "2026-01-15T00:00:00.000Z", 0],
      ["2026-01-15T00:00:00.000Z", "2026-01-15T16:00:00.000Z", 1],
      ["2026-01-15T16:00:00.000Z", "2026-01-16T00:00:00.000Z", 0],
      ["2026-01-16T00:00:00.000Z", "2026-01-16T00:00:00.001Z", 1],
    ]],
    ["an empty interval", E, E, []],
  ])("%s", (_name, from, to, expected) => {
    expect(show(segments(dayNight(SH), from, to))).toEqual(expected);
  });

  it.each([
    // local 2026-01-01 12:00 = 04:00Z; local midnights at 16:00Z
    ["three local days", utc(2026, 1, 1, 4), utc(2026, 1, 3, 4), [
      ["2026-01-01T04:00:00.000Z", "2026-01-01T16:00:00.000Z", 0],
      ["2026-01-01T16:00:00.000Z", "2026-01-02T16:00:00.000Z", 0],
      ["2026-01-02T16:00:00.000Z", "2026-01-03T04:00:00.000Z", 0],
    ]],
    ["two whole local days", utc(2025, 12, 31, 16), utc(2026, 1, 2, 16), [
      ["2025-12-31T16:00:00.000Z", "2026-01-01T16:00:00.000Z", 0],
      ["2026-01-01T16:00:00.000Z", "2026-01-02T16:00:00.000Z", 0],
    ]],
    ["within one local day", utc(2026, 1, 1, 0), utc(2026, 1, 1, 15, 59, 59, 999), [
      ["2026-01-01T00:00:00.000Z", "2026-01-01T15:59:59.999Z", 0],
    ]],
  ])("a single-period tariff gives one segment per local day: %s", (_name, from, to, expected) => {
    expect(show(segments(flat(SH), from, to))).toEqual(expected);
  });

  it("a 30-day interval gives 30 + 1 pieces of a single-period tariff", () => {
    const from = utc(2026, 1, 1, 4); // local 12:00
    const ss = segments(flat(SH), from, from + 30 * 24 * H);
    expect(ss).toHaveLength(31);
    expect(ss.slice(1, -1).every((s) => s.to - s.from === 24 * H)).toBe(true);
  });
});

describe("segments in Europe/Berlin across DST", () => {
  it.each([
    // Spring: local 2026-03-29 00:00 CET = 03-28T23:00Z; 08:00 CEST = 06:00Z (a 7 h night); 24:00 CEST = 22:00Z.
    ["day/night over the spring change", dayNight(BER), utc(2026, 3, 28, 12), utc(2026, 3, 30, 12), [
      ["2026-03-28T12:00:00.000Z", "2026-03-28T23:00:00.000Z", 1],
      ["2026-03-28T23:00:00.000Z", "2026-03-29T06:00:00.000Z", 0],
      ["2026-03-29T06:00:00.000Z", "2026-03-29T22:00:00.000Z", 1],
      ["2026-03-29T22:00:00.000Z", "2026-03-30T06:00:00.000Z", 0],
      ["2026-03-30T06:00:00.000Z", "2026-03-30T12:00:00.000Z", 1],
    ]],
    // Autumn: local 2026-10-25 00:00 CEST = 10-24T22:00Z; 08:00 CET = 07:00Z (a 9 h night); 24:00 CET = 23:00Z.
    ["day/night over the autumn change", dayNight(BER), utc(2026, 10, 24, 12), utc(2026, 10, 26, 12), [
      ["2026-10-24T12:00:00.000Z", "2026-10-24T22:00:00.000Z", 1],
      ["2026-10-24T22:00:00.000Z", "2026-10-25T07:00:00.000Z", 0],
      ["2026-10-25T07:00:00.000Z", "2026-10-25T23:00:00.000Z", 1],
      ["2026-10-25T23:00:00.000Z", "2026-10-26T07:00:00.000Z", 0],
      ["2026-10-26T07:00:00.000Z", "2026-10-26T12:00:00.000Z", 1],
    ]],
    ["single period: a 23 h day then a 24 h day", flat(BER), utc(2026, 3, 28, 23), utc(2026, 3, 30, 22), [
      ["2026-03-28T23:00:00.000Z", "2026-03-29T22:00:00.000Z", 0],
      ["2026-03-29T22:00:00.000Z", "2026-03-30T22:00:00.000Z", 0],
    ]],
    ["single period: a 25 h day in one piece", flat(BER), utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), [
      ["2026-10-24T22:00:00.000Z", "2026-10-25T23:00:00.000Z", 0],
    ]],
    // 01:30 CET on the spring day is 00:30Z, an hour before the jump.
    ["boundary 01:30 just before the spring jump", tariff(BER, { start: "00:00", end: "01:30" }, { start: "01:30", end: "24:00" }), utc(2026, 3, 28, 23), utc(2026, 3, 29, 3), [
      ["2026-03-28T23:00:00.000Z", "2026-03-29T00:30:00.000Z", 0],
      ["2026-03-29T00:30:00.000Z", "2026-03-29T03:00:00.000Z", 1],
    ]],
    // 02:30 never shows in spring: the wall clock passes it at the jump (01:00Z, 02:00 CET -> 03:00 CEST).
    ["boundary 02:30 in the skipped hour", in2to3(BER), utc(2026, 3, 28, 23), utc(2026, 3, 29, 5), [
      ["2026-03-28T23:00:00.000Z", "2026-03-29T01:00:00.000Z", 0],
      ["2026-03-29T01:00:00.000Z", "2026-03-29T05:00:00.000Z", 1],
    ]],
    // 02:30 shows twice in autumn: 00:30Z (CEST) and 01:30Z (CET); 02:00-02:30 CET is period 0 again.
    ["boundary 02:30 in the repeated hour", in2to3(BER), utc(2026, 10, 24, 22), utc(2026, 10, 25, 5), [
      ["2026-10-24T22:00:00.000Z", "2026-10-25T00:30:00.000Z", 0],
      ["2026-10-25T00:30:00.000Z", "2026-10-25T01:00:00.000Z", 1],
      ["2026-10-25T01:00:00.000Z", "2026-10-25T01:30:00.000Z", 0],
      ["2026-10-25T01:30:00.000Z", "2026-10-25T05:00:00.000Z", 1],
    ]],
    // The period 02:00-03:00 does not exist on the spring day.
    ["a period wholly in the skipped hour", threeWay(BER), utc(2026, 3, 28, 23), utc(2026, 3, 29, 5), [
      ["2026-03-28T23:00:00.000Z", "2026-03-29T01:00:00.000Z", 0],
      ["2026-03-29T01:00:00.000Z", "2026-03-29T05:00:00.000Z", 2],
    ]],
    // ...and lasts two hours (00:00Z-02:00Z) on the autumn day, in one segment.
    ["a period wholly in the repeated hour", threeWay(BER), utc(2026, 10, 24, 22), utc(2026, 10, 25, 5), [
      ["2026-10-24T22:00:00.000Z", "2026-10-25T00:00:00.000Z", 0],
      ["2026-10-25T00:00:00.000Z", "2026-10-25T02:00:00.000Z", 1],
      ["2026-10-25T02:00:00.000Z", "2026-10-25T05:00:00.000Z", 2],
    ]],
    ["starting inside the repeated hour (02:15 CET)", in2to3(BER), utc(2026, 10, 25, 1, 15), utc(2026, 10, 25, 1, 45), [
      ["2026-10-25T01:15:00.000Z", "2026-10-25T01:30:00.000Z", 0],
      ["2026-10-25T01:30:00.000Z", "2026-10-25T01:45:00.000Z", 1],
    ]],
    ["1 ms either side of the spring jump", dayNight(BER), utc(2026, 3, 29, 1) - 1, utc(2026, 3, 29, 1) + 1, [
      ["2026-03-29T00:59:59.999Z", "2026-03-29T01:00:00.001Z", 0],
    ]],
  ])("%s", (_name, t, from, to, expected) => {
    expect(show(segments(t, from, to))).toEqual(expected);
  });

  // Many intervals with odd starts and lengths around both changes: the segments tile the interval
  // exactly, and each lies in the period the local wall clock shows at its start, middle and end.
  const starts: number[] = [];
  for (const day of [utc(2026, 3, 28, 12), utc(2026, 10, 24, 12)])
    for (let k = 0; k < 140; k++) starts.push(day + k * (17 * MIN + 13_001));
  it.each([
    ["day/night", dayNight(BER)],
    ["02:30 boundary", in2to3(BER)],
    ["three-way", threeWay(BER)],
    ["flat", flat(BER)],
    ["odd minutes", tariff(BER, { start: "00:00", end: "01:59" }, { start: "01:59", end: "02:01" }, { start: "02:01", end: "02:59" }, { start: "02:59", end: "03:01" }, { start: "03:01", end: "24:00" })],
  ])("tiles every interval exactly (%s)", (_name, t) => {
    for (const from of starts) {
      for (const len of [1, 59_999, 3 * H + 7 * MIN + 1, 26 * H]) {
        const to = from + len;
        const ss = segments(t, from, to);
        const ctx = `${iso(from)}+${len}`;
        expect(ss[0]?.from, ctx).toBe(from);
        expect(ss[ss.length - 1]?.to, ctx).toBe(to);
        let sum = 0;
        ss.forEach((s, i) => {
          expect(s.to - s.from, ctx).toBeGreaterThan(0);
          if (i > 0) expect(s.from, ctx).toBe(ss[i - 1]!.to);
          sum += s.to - s.from;
          for (const at of [s.from, s.to - 1, s.from + Math.floor((s.to - s.from) / 2)])
            expect(s.period, `${ctx} at ${iso(at)}`).toBe(periodAt(t, at));
          // a boundary is where the wall-clock period changes, or a local midnight
          if (s.to < to && wallMinute(s.to, t.timezone) !== 0)
            expect(periodAt(t, s.to), `${ctx} boundary ${iso(s.to)}`).not.toBe(s.period);
        });
        expect(sum, ctx).toBe(len);
      }
    }
  });
});

describe("instantOf / localTime", () => {
  it.each([
    ["Shanghai 08:00", 2026, 1, 15, 8 * H, SH, "2026-01-15T00:00:00.000Z"],
    ["Shanghai 24:00 is the next midnight", 2026, 1, 15, 24 * H, SH, "2026-01-15T16:00:00.000Z"],
    ["Berlin 24:00 on the 23 h day", 2026, 3, 29, 24 * H, BER, "2026-03-29T22:00:00.000Z"],
    ["Berlin 24:00 on the 25 h day", 2026, 10, 25, 24 * H, BER, "2026-10-25T23:00:00.000Z"],
    ["Berlin 03:00 after the jump", 2026, 3, 29, 3 * H, BER, "2026-03-29T01:00:00.000Z"],
    ["Berlin 01:59 before the jump", 2026, 3, 29, 119 * MIN, BER, "2026-03-29T00:59:00.000Z"],
    ["Berlin 01:30 before the jump", 2026, 3, 29, 90 * MIN, BER, "2026-03-29T00:30:00.000Z"],
    ["Berlin 00:00 of the spring day", 2026, 3, 29, 0, BER, "2026-03-28T23:00:00.000Z"],
    ["Berlin 00:00 of the autumn day", 2026, 10, 25, 0, BER, "2026-10-24T22:00:00.000Z"],
    ["Berlin skipped 02:30 maps to the jump", 2026, 3, 29, 150 * MIN, BER, "2026-03-29T01:00:00.000Z"],
    ["Berlin skipped 02:00 maps to the jump", 2026, 3, 29, 2 * H, BER, "2026-03-29T01:00:00.000Z"],
    ["Berlin repeated 02:30 maps to the first", 2026, 10, 25, 150 * MIN, BER, "2026-10-25T00:30:00.000Z"],
    ["Berlin repeated 02:00 maps to the first", 2026, 10, 25, 2 * H, BER, "2026-10-25T00:00:00.000Z"],
    ["Berlin 03:00 after the repeat", 2026, 10, 25, 3 * H, BER, "2026-10-25T02:00:00.000Z"],
    // New York: 2026-03-08 02:00 EST -> 03:00 EDT at 07:00Z; 2026-11-01 02:00 EDT -> 01:00 EST at 06:00Z.
    ["New York skipped 02:30 maps to the jump", 2026, 3, 8, 150 * MIN, "America/New_York", "2026-03-08T07:00:00.000Z"],
    ["New York repeated 01:30 maps to the first", 2026, 11, 1, 90 * MIN, "America/New_York", "2026-11-01T05:30:00.000Z"],
  ])("%s", (_name, y, mo, d, ms, tz, expected) => {
    expect(iso(instantOf(y, mo, d, ms, tz))).toBe(expected);
  });

  it.each([
    [utc(2026, 1, 15, 16), SH, { year: 2026, month: 1, day: 16, msOfDay: 0 }],
    [utc(2026, 1, 15, 15, 59, 59, 999), SH, { year: 2026, month: 1, day: 15, msOfDay: 24 * H - 1 }],
    [utc(2026, 10, 25, 1, 30), BER, { year: 2026, month: 10, day: 25, msOfDay: 150 * MIN }],
    [utc(2026, 10, 25, 0, 30), BER, { year: 2026, month: 10, day: 25, msOfDay: 150 * MIN }],
    [utc(1969, 12, 31, 23, 59, 59, 250), "UTC", { year: 1969, month: 12, day: 31, msOfDay: 24 * H - 750 }],
  ])("localTime(%s, %s)", (ts, tz, expected) => {
    expect(localTime(ts, tz)).toEqual(expected);
  });

  // localTime asks Intl once per UTC hour and zone and reuses the offset (contracts/billing/zoned.ts):
  // it must agree with Intl at every instant, the hours with a DST change and odd offsets included.
  it("agrees with Intl at every instant, hours with a DST change included", () => {
    const zones = [SH, BER, "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "America/St_Johns", "Africa/Casablanca", "UTC"];
    const fmt = new Map(zones.map((tz) => [tz, new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" })]));
    const direct = (ts: number, tz: string) => {
      const p = Object.fromEntries(fmt.get(tz)!.formatToParts(new Date(ts)).map((x) => [x.type, Number(x.value)]));
      return { year: p.year, month: p.month, day: p.day, msOfDay: p.hour! * H + p.minute! * MIN + p.second! * 1000 + (((ts % 1000) + 1000) % 1000) };
    };
    fc.assert(
      fc.property(fc.constantFrom(...zones), fc.integer({ min: utc(1990, 1, 1), max: utc(2040, 1, 1) }), (tz, ts) => {
        expect(localTime(ts, tz)).toEqual(direct(ts, tz));
      }),
      { numRuns: 3000 },
    );
    // Every second of the hours around Berlin's and Lord Howe's (30 min) changes, and the cached hours next to them.
    for (const [tz, change] of [[BER, utc(2026, 3, 29, 1)], [BER, utc(2026, 10, 25, 1)], ["Australia/Lord_Howe", utc(2026, 4, 4, 15)], ["Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)]] as const)
      for (let ts = change - 2 * H; ts < change + 2 * H; ts += 997) expect(localTime(ts, tz), `${tz} ${iso(ts)}`).toEqual(direct(ts, tz));
  });
});
