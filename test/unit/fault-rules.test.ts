import { describe, it, expect } from "vitest";
import type { Reading } from "../../contracts/index.ts";
import { conditions, overCurrent, restorableKinds, type Evidence, type FaultProfile } from "../../processors/internal.ts";

const T0 = 1_764_000_000_000;

/** A healthy reading: relay on, 17 A at 230 V, no meter power. */
function aReading(override: Partial<Reading> = {}): Reading {
  return { ts: T0, seq: 10, state: "on", currentA: 17, voltageV: 230, energyWh: 1000, ...override };
}

/** The protocol defaults. */
function aProfile(override: Partial<FaultProfile> = {}): FaultProfile {
  return { onCurrentA: [16, 18], offCurrentMaxA: 0.1, voltageV: [198, 242], faultDebounceS: 2, faultClearS: 10, ...override };
}

/** All conditions of one reading, as a plain object (kind → evidence). */
function all(r: Reading, opts: { prev?: Reading | undefined; sessionActive?: boolean; profile?: FaultProfile } = {}): Record<string, Evidence> {
  return Object.fromEntries(conditions(opts.profile ?? aProfile(), r, opts.prev, opts.sessionActive ?? true));
}

describe("conditions: the healthy baseline", () => {
  it("a healthy reading in a session shows no condition", () => {
    expect(all(aReading())).toEqual({});
  });
  it("a healthy idle reading (relay off, 0 A) without a session shows no condition", () => {
    expect(all(aReading({ state: "off", currentA: 0 }), { sessionActive: false })).toEqual({});
  });
  it("returns a Map", () => {
    expect(conditions(aProfile(), aReading(), undefined, true)).toBeInstanceOf(Map);
  });
});

describe("conditions: on_current_out_of_range (relay on, current outside [16, 18] A, bounds inclusive)", () => {
  it.each<[currentA: number, expected: Record<string, Evidence>]>([
    [0, { on_current_out_of_range: { currentA: 0, rangeA: [16, 18] } }],
    [15.99, { on_current_out_of_range: { currentA: 15.99, rangeA: [16, 18] } }],
    [16, {}],
    [17, {}],
    [18, {}],
    [18.01, { on_current_out_of_range: { currentA: 18.01, rangeA: [16, 18] } }],
    [30, { on_current_out_of_range: { currentA: 30, rangeA: [16, 18] } }],
  ])("relay on with %s A", (currentA, expected) => {
    expect(all(aReading({ state: "on", currentA }))).toEqual(expected);
  });

  it("takes the range from the profile", () => {
    const profile = aProfile({ onCurrentA: [6, 10] });
    expect(all(aReading({ currentA: 10 }), { profile })).toEqual({});
    expect(all(aReading({ currentA: 10.01 }), { profile })).toEqual({ on_current_out_of_range: { currentA: 10.01, rangeA: [6, 10] } });
    expect(all(aReading({ currentA: 5.99 }), { profile })).toEqual({ on_current_out_of_range: { currentA: 5.99, rangeA: [6, 10] } });
  });

  it("is not checked while the relay is off", () => {
    expect(all(aReading({ state: "off", currentA: 0 }), { sessionActive: false })).not.toHaveProperty("on_current_out_of_range");
  });
});

describe("conditions: off_current_leak (relay off, current above 0.1 A)", () => {
  it.each<[currentA: number, expected: Record<string, Evidence>]>([
    [0, {}],
    [0.05, {}],
    [0.1, {}],
    [0.11, { off_current_leak: { currentA: 0.11, maxA: 0.1 } }],
    [17, { off_current_leak: { currentA: 17, maxA: 0.1 } }],
  ])("relay off with %s A", (currentA, expected) => {
    expect(all(aReading({ state: "off", currentA }), { sessionActive: false })).toEqual(expected);
  });

  it("takes the limit from the profile", () => {
    const profile = aProfile({ offCurrentMaxA: 0.5 });
    expect(all(aReading({ state: "off", currentA: 0.5 }), { profile, sessionActive: false })).toEqual({});
    expect(all(aReading({ state: "off", currentA: 0.51 }), { profile, sessionActive: false })).toEqual({ off_current_leak: { currentA: 0.51, maxA: 0.5 } });
  });

  it("is not checked while the relay is on (0.11 A on is under-current, not a leak)", () => {
    expect(all(aReading({ state: "on", currentA: 0.11 }))).toEqual({ on_current_out_of_range: { currentA: 0.11, rangeA: [16, 18] } });
  });
});

describe("conditions: voltage_out_of_range (outside [198, 242] V, bounds inclusive, either relay state)", () => {
  it.each<[state: "on" | "off", voltageV: number, expected: Record<string, Evidence>]>([
    ["on", 0, { voltage_out_of_range: { voltageV: 0, rangeV: [198, 242] } }],
    ["on", 197.9, { voltage_out_of_range: { voltageV: 197.9, rangeV: [198, 242] } }],
    ["on", 198, {}],
    ["on", 230, {}],
    ["on", 242, {}],
    ["on", 242.1, { voltage_out_of_range: { voltageV: 242.1, rangeV: [198, 242] } }],
    ["off", 197.9, { voltage_out_of_range: { voltageV: 197.9, rangeV: [198, 242] } }],
    ["off", 198, {}],
    ["off", 242, {}],
    ["off", 242.1, { voltage_out_of_range: { voltageV: 242.1, rangeV: [198, 242] } }],
  ])("relay %s at %s V", (state, voltageV, expected) => {
    const r = state === "on" ? aReading({ voltageV }) : aReading({ state: "off", currentA: 0, voltageV });
    expect(all(r, { sessionActive: state === "on" })).toEqual(expected);
  });

  it("takes the range from the profile", () => {
    const profile = aProfile({ voltageV: [100, 127] });
    expect(all(aReading({ voltageV: 127 }), { profile })).toEqual({});
    expect(all(aReading({ voltageV: 230 }), { profile })).toEqual({ voltage_out_of_range: { voltageV: 230, rangeV: [100, 127] } });
  });
});

describe("conditions: power_mismatch (|P − V·I| above max(50 W, 10% of V·I))", () => {
  // V·I = 200 V × 16 A = 3200 W, tolerance 320 W; 200 V × 5 A = 1000 W, tolerance 100 W;
  // 200 V × 0.125 A = 25 W and 0 A = 0 W, tolerance the 50 W floor.
  it.each<[name: string, voltageV: number, currentA: number, powerW: number | undefined, expected: Evidence | undefined]>([
    ["powerW absent, V·I 3200 W", 200, 16, undefined, undefined],
    ["powerW absent, V·I 0 W", 200, 0, undefined, undefined],
    ["P = V·I", 200, 16, 3200, undefined],
    ["P 320 W above (exactly 10%)", 200, 16, 3520, undefined],
    ["P 320.5 W above", 200, 16, 3520.5, { powerW: 3520.5, vTimesIW: 3200 }],
    ["P 320 W below (exactly 10%)", 200, 16, 2880, undefined],
    ["P 320.5 W below", 200, 16, 2879.5, { powerW: 2879.5, vTimesIW: 3200 }],
    ["P 0 with 3200 W flowing", 200, 16, 0, { powerW: 0, vTimesIW: 3200 }],
    ["1000 W: P 100 W above (exactly 10%)", 200, 5, 1100, undefined],
    ["1000 W: P 100.5 W above", 200, 5, 1100.5, { powerW: 1100.5, vTimesIW: 1000 }],
    ["25 W: P 50 W above (the floor)", 200, 0.125, 75, undefined],
    ["25 W: P 50.5 W above", 200, 0.125, 75.5, { powerW: 75.5, vTimesIW: 25 }],
    ["25 W: P 0 (25 W below, within the floor)", 200, 0.125, 0, undefined],
    ["0 W: P 50", 200, 0, 50, undefined],
    ["0 W: P 50.5", 200, 0, 50.5, { powerW: 50.5, vTimesIW: 0 }],
  ])("%s", (_name, voltageV, currentA, powerW, expected) => {
    const r = aReading({ voltageV, currentA, ...(powerW === undefined ? {} : { powerW }) });
    expect(conditions(aProfile(), r, undefined, true).get("power_mismatch")).toEqual(expected);
  });

  it.each<[voltageV: number, currentA: number, vTimesIW: number]>([
    [230.4, 16.07, 3702.5], // 3702.528
    [230, 16.25, 3737.5],
    [231, 17.33, 4003.2], // 4003.23
    [229.9, 16.99, 3906], // 3906.001
  ])("evidence rounds V·I to 0.1 W: %s V × %s A → %s W", (voltageV, currentA, vTimesIW) => {
    expect(all(aReading({ voltageV, currentA, powerW: 0 }))).toEqual({ power_mismatch: { powerW: 0, vTimesIW } });
  });
});

describe("conditions: register_backwards (lower energy, higher seq, later ts than the previous reading)", () => {
  const prev = aReading({ ts: T0, seq: 10, energyWh: 1000 });
  it.each<[name: string, next: Partial<Reading>, expected: Evidence | undefined]>([
    ["lower energy, seq +1, ts +1 s", { ts: T0 + 1000, seq: 11, energyWh: 999.9 }, { energyWh: 999.9, previousWh: 1000 }],
    ["register at 0, seq +5, ts +60 s", { ts: T0 + 60_000, seq: 15, energyWh: 0 }, { energyWh: 0, previousWh: 1000 }],
    ["same energy", { ts: T0 + 1000, seq: 11, energyWh: 1000 }, undefined],
    ["higher energy", { ts: T0 + 1000, seq: 11, energyWh: 1000.1 }, undefined],
    ["lower energy, seq restarted at 0 (meter reboot)", { ts: T0 + 1000, seq: 0, energyWh: 5 }, undefined],
    ["lower energy, seq restarted at 1", { ts: T0 + 1000, seq: 1, energyWh: 999 }, undefined],
    ["lower energy, same seq", { ts: T0 + 1000, seq: 10, energyWh: 999 }, undefined],
    ["lower energy, earlier ts", { ts: T0 - 1000, seq: 11, energyWh: 999 }, undefined],
    ["lower energy, same ts", { ts: T0, seq: 11, energyWh: 999 }, undefined],
  ])("%s", (_name, next, expected) => {
    expect(conditions(aProfile(), aReading(next), prev, true).get("register_backwards")).toEqual(expected);
  });

  it("never without a previous reading", () => {
    expect(all(aReading({ energyWh: 0 }), { prev: undefined })).toEqual({});
  });

  it("is the only condition of an otherwise healthy reading", () => {
    expect(all(aReading({ ts: T0 + 1000, seq: 11, energyWh: 999.9 }), { prev })).toEqual({ register_backwards: { energyWh: 999.9, previousWh: 1000 } });
  });
});

describe("conditions: relay_on_without_session", () => {
  it.each<[state: "on" | "off", sessionActive: boolean, expected: Record<string, Evidence>]>([
    ["on", false, { relay_on_without_session: { state: "on" } }],
    ["on", true, {}],
    ["off", false, {}],
    ["off", true, {}],
  ])("relay %s, sessionActive %s", (state, sessionActive, expected) => {
    const r = state === "on" ? aReading() : aReading({ state: "off", currentA: 0 });
    expect(all(r, { sessionActive })).toEqual(expected);
  });
});

describe("conditions: several at once", () => {
  it("reports each kind with its own evidence", () => {
    const prev = aReading({ ts: T0, seq: 10, energyWh: 1000 });
    const r = aReading({ ts: T0 + 1000, seq: 11, state: "on", currentA: 20, voltageV: 250, powerW: 100, energyWh: 990 });
    expect(all(r, { prev, sessionActive: false })).toEqual({
      on_current_out_of_range: { currentA: 20, rangeA: [16, 18] },
      voltage_out_of_range: { voltageV: 250, rangeV: [198, 242] },
      power_mismatch: { powerW: 100, vTimesIW: 5000 },
      register_backwards: { energyWh: 990, previousWh: 1000 },
      relay_on_without_session: { state: "on" },
    });
  });

  it("a leaking relay off at low voltage", () => {
    expect(all(aReading({ state: "off", currentA: 2, voltageV: 190 }), { sessionActive: false })).toEqual({
      off_current_leak: { currentA: 2, maxA: 0.1 },
      voltage_out_of_range: { voltageV: 190, rangeV: [198, 242] },
    });
  });
});

describe("overCurrent (relay on and current above the range's maximum)", () => {
  it.each<[state: "on" | "off", currentA: number, profile: FaultProfile, expected: boolean]>([
    ["on", 17, aProfile(), false],
    ["on", 18, aProfile(), false],
    ["on", 18.01, aProfile(), true],
    ["on", 30, aProfile(), true],
    ["on", 15, aProfile(), false], // under-current is a fault, not a safety stop
    ["off", 30, aProfile(), false],
    ["off", 18.01, aProfile(), false],
    ["on", 18.01, aProfile({ onCurrentA: [16, 20] }), false],
    ["on", 20.01, aProfile({ onCurrentA: [16, 20] }), true],
  ])("relay %s with %s A (%j) → %s", (state, currentA, profile, expected) => {
    expect(overCurrent(profile, aReading({ state, currentA }))).toBe(expected);
  });
});

describe("restorableKinds: a fault checkpoint's open list read back", () => {
  it("keeps the kinds this release knows, once each, and names the rest", () => {
    const r = restorableKinds(["off_current_leak", "kind_from_a_newer_release", "terminal_offline", "off_current_leak", ""]);
    expect(r.kinds).toEqual(["off_current_leak", "terminal_offline"]);
    expect(r.unknown).toEqual(["kind_from_a_newer_release", ""]);
  });
  it("an empty list restores nothing", () => {
    expect(restorableKinds([])).toEqual({ kinds: [], unknown: [] });
  });
});
