import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { packageParts, PACKAGE_PART_BYTES } from "../../control/internal.ts";

const bytes = (x: unknown) => Buffer.byteLength(JSON.stringify(x));
const terminal = (i: number) => ({ terminalId: `T${i}`, regionId: "R1", sessions: i % 7, energyWh: i * 1.5, feeCents: i, hourly: new Array(24).fill(i % 3), busyShare: 0.25, faultsOpened: 0 });
const pkg = (terminals: number, faults: number) => ({
  day: "2026-11-30",
  timezone: "Asia/Shanghai",
  franchiseeId: "FR1",
  totals: { sessions: 3, energyWh: 12.5, feeCents: 9, hourly: new Array(24).fill(0) },
  terminals: Array.from({ length: terminals }, (_, i) => terminal(i)),
  faults: Array.from({ length: faults }, (_, i) => ({ faultId: `F-${i}`, kind: "off_current_leak", terminalId: `T${i}`, evidence: { note: "x".repeat(i % 50) } })),
  pendingSessions: 4,
});

describe("a daily package in parts (control/reports/package-parts.ts)", () => {
  it("a package that fits is one message: itself, part 1 of 1", () => {
    const p = pkg(10, 2);
    expect(packageParts(p)).toEqual([{ ...p, part: 1, parts: 1 }]);
  });

  it("a city franchisee's day (20,000 terminals) goes in parts, each under the bound, which join to the whole", () => {
    const p = pkg(20_000, 300);
    expect(bytes(p)).toBeGreaterThan(2 ** 20); // over NATS's default max_payload as one message
    const parts = packageParts(p);
    expect(parts.length).toBeGreaterThan(4);
    for (const [i, part] of parts.entries()) {
      expect(bytes(part)).toBeLessThanOrEqual(PACKAGE_PART_BYTES);
      expect({ part: part.part, parts: part.parts }).toEqual({ part: i + 1, parts: parts.length });
      // Everything but the lists is in every part.
      expect({ ...part, terminals: [], faults: [], part: 0, parts: 0 }).toEqual({ ...p, terminals: [], faults: [], part: 0, parts: 0 });
    }
    expect(parts.flatMap((x) => x.terminals)).toEqual(p.terminals);
    expect(parts.flatMap((x) => x.faults)).toEqual(p.faults);
  });

  it("any sizes and bounds: parts under the bound, nothing lost, nothing repeated, in order", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 2_000, max: 40_000 }), (t, f, max) => {
        const p = pkg(t, f);
        const parts = packageParts(p, max);
        for (const part of parts) expect(bytes(part)).toBeLessThanOrEqual(max);
        expect(parts.flatMap((x) => x.terminals)).toEqual(p.terminals);
        expect(parts.flatMap((x) => x.faults)).toEqual(p.faults);
        // No part is empty but a package's only one.
        if (parts.length > 1) for (const part of parts) expect(part.terminals.length + part.faults.length).toBeGreaterThan(0);
      }),
      { numRuns: 60 },
    );
  });

  it("refuses an entry that no message could carry, rather than make a message the server refuses", () => {
    const p = { ...pkg(2, 0), faults: [{ faultId: "F-big", evidence: "x".repeat(5_000) }] };
    expect(() => packageParts(p, 4_000)).toThrow(/one entry of a package takes \d+ bytes, over the 4000 of a message/);
  });
});
