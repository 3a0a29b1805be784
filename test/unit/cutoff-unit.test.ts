import { describe, expect, it } from "vitest";
import type { Arm, Reading } from "../../contracts/index.ts";
import { beginUnit, type HeldStates } from "../../processors/internal.ts";

// The cutoff stage's unit of work: its changes are kept only on commit, so a unit whose effects
// failed (the cutoff publish) is decided again in full when retried, and never twice once kept.
const START = 1_795_478_400_000;
const arm: Arm = {
  sessionId: "S-1",
  terminalId: "T1",
  startTs: START,
  startWh: 1000,
  target: { energyWh: 2 },
  capCents: 1000,
  capLookahead: false,
  tariff: { version: 1, timezone: "Asia/Shanghai", periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100, timeCentsPerHour: 0 }] },
};
const reading = (s: number, wh: number): Reading => ({ ts: START + s * 1000, seq: s, state: "on", currentA: 16, voltageV: 220, energyWh: wh });
const opts = { partitioned: false, step: { silenceMs: 30_000 } };
const fresh = (): HeldStates => ({ states: new Map(), owned: new Set(), waitingArms: new Map() });
const cutoffsOf = (effects: { kind: string }[]) => effects.filter((e) => e.kind === "cutoff").length;

function armed(): HeldStates {
  const held = fresh();
  const u = beginUnit(held, opts);
  u.apply("T1", { kind: "arm", arm }, START);
  u.commit();
  return held;
}

describe("a cutoff unit of work", () => {
  it("changes nothing held until committed", () => {
    const held = armed();
    const before = held.states.get("T1");
    const u = beginUnit(held, opts);
    u.own("T1", START);
    expect(cutoffsOf(u.apply("T1", { kind: "reading", reading: reading(1, 1002.5), seenAt: START + 1000 }, START + 1000))).toBe(1);
    // The unit sees its own change...
    expect(u.state("T1")?.cutoff).toBe("target_reached");
    // ...the held state does not.
    expect(held.states.get("T1")).toBe(before);
    expect(held.owned.has("T1")).toBe(false);
  });

  it("decides the same cutoff again when a dropped unit is retried, and not once the retry is kept", () => {
    const held = armed();
    const step = () => {
      const u = beginUnit(held, opts);
      return { u, effects: u.apply("T1", { kind: "reading", reading: reading(1, 1002.5), seenAt: START + 1000 }, START + 1000) };
    };
    const first = step(); // its publish fails: not committed
    const retry = step();
    expect(retry.effects).toEqual(first.effects);
    expect(cutoffsOf(retry.effects)).toBe(1);
    retry.u.commit();
    expect(cutoffsOf(step().effects)).toBe(0);
    // Later readings do not ask again either.
    const u = beginUnit(held, opts);
    expect(cutoffsOf(u.apply("T1", { kind: "reading", reading: reading(2, 1004), seenAt: START + 2000 }, START + 2000))).toBe(0);
  });

  it("keeps a waiting arm of a partition until the reading that owns its terminal is kept", () => {
    const held = fresh();
    const p = { ...opts, partitioned: true };
    const a = beginUnit(held, p);
    expect(a.apply("T1", { kind: "arm", arm }, START)).toEqual([]);
    a.commit();
    expect(held.waitingArms.has("T1")).toBe(true);
    const dropped = beginUnit(held, p);
    expect(dropped.own("T1", START).map((e) => e.kind)).toEqual(["save_meter"]);
    // Not committed: the arm still waits and the terminal is not owned.
    expect(held.waitingArms.has("T1")).toBe(true);
    expect(held.owned.has("T1")).toBe(false);
    const kept = beginUnit(held, p);
    kept.own("T1", START);
    kept.commit();
    expect(held.waitingArms.has("T1")).toBe(false);
    expect(held.owned.has("T1")).toBe(true);
    expect(held.states.get("T1")?.arm?.sessionId).toBe("S-1");
  });
});
