import { describe, expect, it } from "vitest";
import { suggestTimeOfUse } from "../../control/internal.ts";

const curve = (f: (h: number) => number) => Array.from({ length: 24 }, (_, h) => f(h));

describe("suggested time-of-use periods", () => {
  it("an evening peak, a night valley and flat hours between", () => {
    // Mean 0.25 + 4/24 ... : peak from (mean + max) / 2, valley at most mean / 2.
    const c = curve((h) => (h >= 18 && h < 22 ? 1 : h >= 8 && h < 12 ? 0.25 : 0));
    expect(suggestTimeOfUse(c)).toEqual([
      { start: "00:00", end: "08:00", kind: "valley" },
      { start: "08:00", end: "12:00", kind: "flat" },
      { start: "12:00", end: "18:00", kind: "valley" },
      { start: "18:00", end: "22:00", kind: "peak" },
      { start: "22:00", end: "24:00", kind: "valley" },
    ]);
  });

  it("covers the day in order, whatever the curve", () => {
    for (let seed = 1; seed < 50; seed++) {
      const c = curve((h) => ((h * 7919 * seed) % 101) / 100);
      const periods = suggestTimeOfUse(c);
      expect(periods[0]!.start).toBe("00:00");
      expect(periods.at(-1)!.end).toBe("24:00");
      for (let i = 1; i < periods.length; i++) {
        expect(periods[i]!.start).toBe(periods[i - 1]!.end);
        expect(periods[i]!.kind).not.toBe(periods[i - 1]!.kind);
      }
    }
  });

  it("at the thresholds: the peak's edge is peak, half the mean is valley", () => {
    // Eleven hours at 1, one at 0.75, one at half the mean, the rest 0: the mean m solves
    // 24m = 11.75 + m/2, so m = 0.5; the peak starts at m + (1 - m)/2 = 0.75, the valley ends at 0.25.
    const c = curve((h) => (h < 11 ? 1 : 0));
    c[11] = 0.75;
    c[12] = 0.25;
    const mean = c.reduce((a, b) => a + b, 0) / 24;
    expect(mean).toBe(0.5);
    const kinds = suggestTimeOfUse(c);
    const kindAt = (h: number) => kinds.find((p) => Number(p.start.slice(0, 2)) <= h && h < Number(p.end.slice(0, 2)))!.kind;
    expect(kindAt(10)).toBe("peak");
    expect(kindAt(11)).toBe("peak");
    expect(kindAt(12)).toBe("valley");
    expect(kindAt(13)).toBe("valley");
  });

  it("a flat or empty curve is all flat; a curve must have 24 values", () => {
    expect(suggestTimeOfUse(curve(() => 0))).toEqual([{ start: "00:00", end: "24:00", kind: "flat" }]);
    expect(suggestTimeOfUse(curve(() => 0.4))).toEqual([{ start: "00:00", end: "24:00", kind: "flat" }]);
    expect(() => suggestTimeOfUse([1, 2, 3])).toThrow(RangeError);
  });
});
