import { describe, expect, it } from "vitest";
import type { Arm, Reading, TerminalInfo } from "../../contracts/index.ts";
import { beginUnit, cutoffLogic, Deadlines, faultLogic, type CutoffConfig, type FaultConfig, type Held } from "../../processors/internal.ts";

// A stage's unit of work (processors/unit.ts), with the cutoff and fault steps: its changes are
// kept only on commit, so a unit whose effects failed (the cutoff publish) is decided again in
// full when retried, and never twice once kept.
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
const profile = { onCurrentA: [16, 18] as [number, number], offCurrentMaxA: 0.1, voltageV: [198, 242] as [number, number], faultDebounceS: 2, faultClearS: 10 };
const info: TerminalInfo = { terminalId: "T1", gatewayId: "G1", franchiseeId: "F1", regionId: "R1", profile };
const reading = (s: number, wh: number): Reading => ({ ts: START + s * 1000, seq: s, state: "on", currentA: 16, voltageV: 220, energyWh: wh });
const readingInput = (s: number, wh: number) => ({ kind: "reading" as const, reading: reading(s, wh), gatewayId: "G1", seenAt: START + s * 1000 });
const config =
  (partitioned = false) =>
  (terminalId: string): CutoffConfig => ({ terminal: { terminalId, info, ours: true, maxAheadMs: 60_000 }, silenceMs: 30_000, partitioned, owner: "vend_cutoff" });
const fresh = <S>(): Held<S> => ({ states: new Map(), deadlines: new Deadlines() });
const cutoffsOf = (effects: { kind: string }[]) => effects.filter((e) => e.kind === "cutoff").length;

function armed() {
  const held = fresh<ReturnType<typeof cutoffLogic.empty>>();
  const u = beginUnit(held, cutoffLogic, config());
  u.apply("T1", { kind: "arm", arm }, START);
  u.commit();
  return held;
}

describe("a stage's unit of work", () => {
  it("changes nothing held until committed, then sets the deadline the step says", () => {
    const held = armed();
    expect(held.deadlines.get("T1")).toBe(START + 30_000);
    const before = held.states.get("T1");
    const u = beginUnit(held, cutoffLogic, config());
    expect(cutoffsOf(u.apply("T1", readingInput(1, 1002.5), START + 1000))).toBe(1);
    // The unit sees its own change...
    expect(u.state("T1")?.cutoff).toBe("target_reached");
    expect(u.effects.map((e) => [e.terminalId, e.effect.kind])).toEqual([
      ["T1", "cutoff"],
      ["T1", "save_meter"],
      ["T1", "progress"],
    ]);
    // ...the held state does not, nor its deadline.
    expect(held.states.get("T1")).toBe(before);
    expect(u.held("T1")).toBe(before);
    expect(held.deadlines.get("T1")).toBe(START + 30_000);
    u.commit();
    // Cut: no silence deadline any more.
    expect(held.deadlines.get("T1")).toBeUndefined();
  });

  it("decides the same cutoff again when a dropped unit is retried, and not once the retry is kept", () => {
    const held = armed();
    const step = () => {
      const u = beginUnit(held, cutoffLogic, config());
      return { u, effects: u.apply("T1", readingInput(1, 1002.5), START + 1000) };
    };
    const first = step(); // its publish fails: not committed
    const retry = step();
    expect(retry.effects).toEqual(first.effects);
    expect(cutoffsOf(retry.effects)).toBe(1);
    retry.u.commit();
    expect(cutoffsOf(step().effects)).toBe(0);
    // Later readings do not ask again either.
    const u = beginUnit(held, cutoffLogic, config());
    expect(cutoffsOf(u.apply("T1", readingInput(2, 1004), START + 2000))).toBe(0);
  });

  it("keeps a waiting arm of the static split until the reading that owns its terminal is kept", () => {
    const held = fresh<ReturnType<typeof cutoffLogic.empty>>();
    const a = beginUnit(held, cutoffLogic, config(true));
    expect(a.apply("T1", { kind: "arm", arm }, START)).toEqual([]);
    a.commit();
    expect(held.states.get("T1")?.waitingArm).toEqual(arm);
    const dropped = beginUnit(held, cutoffLogic, config(true));
    expect(dropped.apply("T1", readingInput(0, 1000), START).map((e) => e.kind)).toEqual(["save_meter"]);
    // Not committed: the arm still waits and the terminal is not owned.
    expect(held.states.get("T1")).toMatchObject({ waitingArm: arm, owned: false });
    const kept = beginUnit(held, cutoffLogic, config(true));
    kept.apply("T1", readingInput(0, 1000), START);
    kept.commit();
    expect(held.states.get("T1")).toMatchObject({ waitingArm: null, owned: true, arm: { sessionId: "S-1" } });
  });

  it("forgets a state the step says is not worth holding, and its deadline", () => {
    const held = armed();
    const u = beginUnit(held, cutoffLogic, config());
    expect(u.apply("T1", { kind: "disarm" }, START + 5000).map((e) => e.kind)).toEqual(["drop_meter"]);
    expect(u.state("T1")).toBeUndefined();
    u.commit();
    expect(held.states.has("T1")).toBe(false);
    expect(held.deadlines.size).toBe(0);
  });

  it("holds no fault state for a checkpoint of another partition's terminal", () => {
    const held = fresh<ReturnType<typeof faultLogic.empty>>();
    const cfg = (ours: boolean) => (terminalId: string): FaultConfig => ({ terminal: { terminalId, info, ours, maxAheadMs: 60_000 }, profile, offlineMs: 60_000 });
    const theirs = beginUnit(held, faultLogic, cfg(false));
    theirs.apply("T1", { kind: "restore", open: ["terminal_offline"] }, START);
    theirs.commit();
    expect(held.states.size).toBe(0);
    const mine = beginUnit(held, faultLogic, cfg(true));
    mine.apply("T1", { kind: "restore", open: ["voltage_out_of_range"] }, START);
    mine.commit();
    expect(held.states.get("T1")?.tracks.voltage_out_of_range?.open).toBe(true);
    // Watched for silence from when it was restored.
    expect(held.deadlines.get("T1")).toBe(START + 60_000);
  });
});
