import { describe, expect, it } from "vitest";
import { Checker, exactFeeReaches, feeCents, type SessionRow, type Fleet, type Taken } from "../../bench/index.ts";

// The chaos suite's own arithmetic and overshoot rule, on hand-made records: a checker that cannot
// fail proves nothing.

describe("chaos fee (flat 150 c/kWh, 36 c/h)", () => {
  it.each([
    [0n, 0, 0],
    [3_334n, 0, 1], // 0.5001 c rounds up
    [3_333n, 0, 0], // 0.49995 c rounds down
    [0n, 3_600_000, 36],
    [1_000_000n, 3_600_000, 186],
  ])("%s mWh over %s ms is %s cents", (mwh, ms, cents) => expect(feeCents(mwh, ms, Infinity)).toBe(cents));

  it("caps", () => expect(feeCents(1_000_000n, 0, 100)).toBe(100));

  it("an amount is reached by the exact fee, not the rounded one", () => {
    expect(exactFeeReaches(3_334n, 0, 1)).toBe(false); // bills 1 cent, but only half a cent's worth
    expect(exactFeeReaches(6_667n, 0, 1)).toBe(true);
  });
});

describe("chaos overshoot", () => {
  const sessionId = "S-1";
  /** A terminal that acknowledged power on at 0 (register 100 Wh) and read every second, +1 Wh each, power on for `on` readings. */
  const fleetWith = (on: number, limits: { limitWh?: number; limitS?: number } = {}) => {
    const taken: Taken[] = [];
    for (let i = 1; i <= on; i++) taken.push({ ts: i * 1000, seq: i, wh: 100 + i, relay: "on", currentA: 16.8, sessionId });
    taken.push({ ts: (on + 1) * 1000, seq: on + 1, wh: 100 + on, relay: "off", currentA: 0, sessionId: undefined });
    const terminal = {
      events: [{ type: "power_on_ack", sessionId, energyWh: 100, ts: 0 }],
      commands: [{ type: "power_on", cmdId: "C-1", sessionId, limitS: 43_200, ...limits }],
    };
    return { terminals: new Map([["T1", terminal]]), taken: new Map([["T1", taken]]) } as unknown as Fleet;
  };
  const row = (target: SessionRow["target"]): SessionRow => ({
    sessionId,
    userId: "U1",
    terminalId: "T1",
    state: "completed",
    target,
    payment: "prepaid",
    heldCents: 500,
    capCents: 500,
    startMwh: 100_000,
    endMwh: null,
    energyMwh: 0,
    durationMs: 0,
    feeCents: 0,
    stopReason: "target_reached",
    createdAt: 0,
    startedAt: 0,
    endedAt: null,
  });
  const over = (fleet: Fleet, target: SessionRow["target"], down: { from: number; to: number }[] = []) =>
    new Checker("postgres://unused@127.0.0.1:1/none", fleet, "p").overshoot([row(target)], down);

  it("one reading past the target is allowed", () => expect(over(fleetWith(6), { energyWh: 5 }).violations).toBe(0));
  it("two readings past the target are not", () => {
    const r = over(fleetWith(7), { energyWh: 5 });
    expect(r.violations).toBe(1);
    expect(r.past.get(sessionId)).toMatchObject({ dueTs: 5000, readings: 2 });
  });
  it("a duration target counts from the power-on acknowledgement", () => expect(over(fleetWith(12), { durationS: 10 }).violations).toBe(1));
  it("with the cloud down, the terminal's own limit is the bound", () => {
    expect(over(fleetWith(7, { limitWh: 5 }), { energyWh: 5 }, [{ from: 0, to: 60_000 }]).violations).toBe(1);
    expect(over(fleetWith(7, { limitWh: 6 }), { energyWh: 5 }, [{ from: 0, to: 60_000 }]).violations).toBe(0);
  });
});
