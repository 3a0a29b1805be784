import { describe, it, expect } from "vitest";
import type { JsMsg } from "@nats-io/jetstream";
import { repeatOf, transition, withoutRepeats, type EventItem, type SessionCore, type SessionInput } from "../../control/internal.ts";
import type { TerminalEvent } from "../../contracts/index.ts";

// Issue 17: events answering repeated commands are handled without the row lock when the committed
// state already shows them handled. Safe only if that answer is the locked transition's at the
// snapshot, and, where the state can still move, stays right in every later state.

const STARTED = 1_795_478_400_000;
const a = (o: Partial<SessionCore>): SessionCore => ({ state: "authorizing", handshakeOk: false, stopReason: null, startedAt: null, startMwh: null, ...o });
const states: Record<string, SessionCore> = {
  authorizing: a({}),
  authorizing_ok: a({ handshakeOk: true }),
  active: a({ state: "active", handshakeOk: true, startedAt: STARTED, startMwh: 1000 }),
  stopping: a({ state: "stopping", handshakeOk: true, startedAt: STARTED, startMwh: 1000, stopReason: "user_stop" }),
  completed: a({ state: "completed", handshakeOk: true, startedAt: STARTED, startMwh: 1000, stopReason: "target_reached" }),
  failed_handshake: a({ state: "failed", stopReason: "handshake_failed" }),
  failed_after_ok: a({ state: "failed", handshakeOk: true, stopReason: "terminal_offline" }),
};
/** The states a session can move to from each (itself included): the machine only goes forward. */
const later: Record<string, string[]> = {
  authorizing: Object.keys(states),
  authorizing_ok: ["authorizing_ok", "active", "stopping", "completed", "failed_after_ok"],
  active: ["active", "stopping", "completed"],
  stopping: ["stopping", "completed"],
  completed: ["completed"],
  failed_handshake: ["failed_handshake"],
  failed_after_ok: ["failed_after_ok"],
};
const events: Record<string, SessionInput> = {
  hs_ok: { kind: "handshake_result", match: true, terminalCode: "T1", expectedCode: "T1" },
  hs_mismatch: { kind: "handshake_result", match: false, terminalCode: "T1", expectedCode: "T1" },
  on_ack: { kind: "power_on_ack", ts: STARTED + 5, energyWh: 3 },
  off_ack: { kind: "power_off_ack", ts: STARTED + 9, energyWh: 4, targetMet: true },
  limit: { kind: "terminal_limit", ts: STARTED + 9, energyWh: 4, targetMet: false },
};
const harmless = new Set(["close_commands", "disarm", "arm"]);

describe("repeatOf: events handled without the row lock", () => {
  for (const [sName, s] of Object.entries(states))
    for (const [iName, input] of Object.entries(events))
      it(`${iName} in ${sName}`, () => {
        const quick = repeatOf(s, input);
        if (quick === null) return; // the locked transition decides, as before
        const t = transition(s, input, 0);
        // What the locked transition would do at the snapshot: nothing, or only these repeats.
        expect(t === null ? [] : t.actions).toEqual(quick);
        if (t) expect(t.patch).toEqual({});
        for (const x of quick) expect(harmless.has(x.kind)).toBe(true);
        // A state that can still move: nothing it moves to may call for anything but repeats.
        for (const next of later[sName]!) {
          const u = transition(states[next]!, input, 0);
          if (u === null) continue;
          expect(u.patch, `${iName} in ${next}`).toEqual({});
          // Past an active session a re-arm is not asked for; a power_on_ack of an ended session
          // switches it off, which only the locked path does: only reachable from non-ended states
          // whose repeat is a re-arm checked against the arm (the caller falls back when it is missing).
          if (quick.some((x) => x.kind === "arm")) continue;
          for (const x of u.actions) expect(harmless.has(x.kind), `${iName} in ${next}: ${x.kind}`).toBe(true);
        }
      });

  it("leaves the cases that change a session to the locked transition", () => {
    expect(repeatOf(states.authorizing!, events.hs_ok!)).toBeNull();
    expect(repeatOf(states.authorizing_ok!, events.on_ack!)).toBeNull();
    expect(repeatOf(states.stopping!, events.off_ack!)).toBeNull();
    expect(repeatOf(states.active!, events.limit!)).toBeNull();
    // Power on for a session that already ended: switched off again under the lock.
    expect(repeatOf(states.completed!, events.on_ack!)).toBeNull();
  });

  it("handles the answers to repeated commands", () => {
    expect(repeatOf(states.active!, events.hs_ok!)).toEqual([]);
    expect(repeatOf(states.active!, events.on_ack!)).toEqual([{ kind: "arm", ts: STARTED, energyWh: 1 }]);
    expect(repeatOf(states.completed!, events.off_ack!)).toEqual([{ kind: "disarm" }]);
    expect(repeatOf(states.failed_after_ok!, events.off_ack!)).toEqual([{ kind: "close_commands", types: ["power_off"], status: "acked" }]);
  });
});

describe("withoutRepeats", () => {
  const item = (terminalId: string, event: TerminalEvent): EventItem => ({ gatewayId: "G1", terminalId, event, msg: {} as JsMsg });
  const on = (sessionId: string, ts = 5): TerminalEvent => ({ type: "power_on_ack", sessionId, ts, energyWh: 3 });
  const off = (sessionId: string): TerminalEvent => ({ type: "power_off_ack", sessionId, ts: 9, energyWh: 4 });

  it("drops only back-to-back copies of a session's event", () => {
    const items = [item("T1", on("S1")), item("T2", on("S2")), item("T1", on("S1")), item("T1", on("S1", 6)), item("T1", off("S1")), item("T1", on("S1")), item("T2", on("S2"))];
    const kept = withoutRepeats(items);
    // S1: on, on (copy: dropped), on with another ts (kept), off, on after off (kept: order matters).
    expect(kept).toEqual([items[0], items[1], items[3], items[4], items[5]]);
  });
});
