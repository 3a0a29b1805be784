import { describe, expect, it } from "vitest";
import { SimTerminal } from "../../cli/index.ts";
import { terminalEventSchema, type TerminalEvent } from "../../contracts/index.ts";

const T0 = 1_795_478_400_000;

/** A terminal on a hand-driven clock; 3600 W (16 A at 225 V), so 1 Wh per second. */
function aTerminal(o: { energyWh?: number } = {}) {
  let now = T0;
  const sent: TerminalEvent[] = [];
  const t = new SimTerminal("T1", { clock: () => now, send: (_id, ev) => sent.push(ev) }, { currentA: 16, voltageV: 225, energyWh: o.energyWh ?? 100_000 });
  return {
    t,
    sent,
    at: (ms: number) => (now = T0 + ms),
    limitEvents: () => sent.filter((e) => e.type === "power_off"),
  };
}

describe("the simulated terminal's own limit", () => {
  it("stops at limitWh exactly, reports power_off limit with that register, and delivers nothing after", () => {
    const s = aTerminal();
    s.t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1", limitWh: 10, limitS: 3600 });
    s.at(9_000);
    expect(s.t.read()).toMatchObject({ state: "on", energyWh: 100_009, sessionId: "S1" });
    expect(s.limitEvents()).toEqual([]);
    // The limit falls between two readings (at 10 s); the next reading finds the relay off there.
    s.at(12_500);
    const r = s.t.read()!;
    expect(r).toMatchObject({ state: "off", energyWh: 100_010, currentA: 0 });
    expect(r.sessionId).toBeUndefined();
    expect(s.limitEvents()).toEqual([{ type: "power_off", sessionId: "S1", reason: "limit", energyWh: 100_010, ts: T0 + 10_000 }]);
    expect(terminalEventSchema.parse(s.limitEvents()[0])).toEqual(s.limitEvents()[0]);
    s.at(60_000);
    expect(s.t.read()).toMatchObject({ state: "off", energyWh: 100_010 });
    expect(s.limitEvents()).toHaveLength(1);
  });

  it("answers a later power_off of the session it stopped with where it stopped, not when the command came", () => {
    const s = aTerminal();
    s.t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1", limitWh: 10 });
    s.at(12_500);
    s.t.read();
    s.t.receive({ type: "power_off", cmdId: "C2", sessionId: "S1", reason: "target_reached" });
    expect(s.sent.filter((e) => e.type === "power_off_ack")).toEqual([{ type: "power_off_ack", sessionId: "S1", energyWh: 100_010, ts: T0 + 10_000 }]);
  });

  it("stops at limitS when the energy limit is not reached first", () => {
    const s = aTerminal();
    s.at(500);
    s.t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1", limitWh: 1000, limitS: 30 });
    s.at(45_000);
    expect(s.t.read()).toMatchObject({ state: "off", energyWh: 100_030 });
    expect(s.limitEvents()).toEqual([{ type: "power_off", sessionId: "S1", reason: "limit", energyWh: 100_030, ts: T0 + 30_500 }]);
  });

  it("follows a change of current: the energy limit comes later at a lower current", () => {
    const s = aTerminal();
    s.t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1", limitWh: 10 });
    s.at(5_000);
    s.t.set({ currentA: 8 }); // 0.5 Wh/s from here: the 5 Wh left take 10 s
    s.at(14_000);
    expect(s.t.read()).toMatchObject({ state: "on", energyWh: 100_009.5 });
    s.at(16_000);
    expect(s.t.read()).toMatchObject({ state: "off", energyWh: 100_010 });
    expect(s.limitEvents()).toEqual([{ type: "power_off", sessionId: "S1", reason: "limit", energyWh: 100_010, ts: T0 + 15_000 }]);
  });

  it("a terminal that does not enforce limits runs past them until told to stop", () => {
    const s = aTerminal();
    s.t.set({ limits: false });
    s.t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1", limitWh: 10, limitS: 5 });
    s.at(60_000);
    expect(s.t.read()).toMatchObject({ state: "on", energyWh: 100_060 });
    expect(s.limitEvents()).toEqual([]);
  });

  it("without limits runs until told to stop", () => {
    const s = aTerminal();
    s.t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1" });
    s.at(86_400_000);
    expect(s.t.read()).toMatchObject({ state: "on", energyWh: 186_400 });
    expect(s.limitEvents()).toEqual([]);
  });

  it("a power_off before the limit clears it; a repeated power_on does not restart it", () => {
    const s = aTerminal();
    s.t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1", limitWh: 10 });
    s.at(5_000);
    s.t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1", limitWh: 10 }); // a repeat: one command
    s.at(8_000);
    s.t.receive({ type: "power_off", cmdId: "C2", sessionId: "S1", reason: "user_stop" });
    s.at(30_000);
    expect(s.t.read()).toMatchObject({ state: "off", energyWh: 100_008 });
    expect(s.limitEvents()).toEqual([]);
  });

  it("a command after the limit finds the relay already off at the limit's register", () => {
    const s = aTerminal();
    s.t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1", limitWh: 10 });
    s.at(20_000);
    // No reading in between: the cloud's power_off is the first look. The limit comes first.
    s.t.receive({ type: "power_off", cmdId: "C2", sessionId: "S1", reason: "target_reached" });
    expect(s.sent.map((e) => e.type)).toEqual(["power_on_ack", "power_off", "power_off_ack"]);
    expect(s.sent[2]).toMatchObject({ energyWh: 100_010, ts: T0 + 20_000 });
  });

  it("stops while offline and reports once it is back", () => {
    const s = aTerminal();
    s.t.receive({ type: "power_on", cmdId: "C1", sessionId: "S1", limitS: 10 });
    s.t.set({ online: false });
    s.at(20_000);
    expect(s.t.read()).toBeUndefined();
    expect(s.t.relay).toBe("off");
    expect(s.limitEvents()).toEqual([]);
    s.t.set({ online: true });
    expect(s.limitEvents()).toEqual([{ type: "power_off", sessionId: "S1", reason: "limit", energyWh: 100_010, ts: T0 + 10_000 }]);
  });
});
