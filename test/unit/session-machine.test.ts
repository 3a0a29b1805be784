import { describe, it, expect } from "vitest";
import { transition, type SessionCore, type SessionInput, type Transition } from "../../control/internal.ts";
import type { PowerOffReason, SessionStopReason } from "../../contracts/index.ts";

// new Date(1795478400000).toISOString() === "2026-11-24T00:00:00.000Z" (08:00 in Asia/Shanghai).
// The machine never looks at wall-clock periods; the constants only keep the three clocks apart:
// the platform's `now`, and the terminal's ack stamps.
const T8 = 1_795_478_400_000;
const STARTED = T8 - 3_600_000; // power-on ack stamp of a running session
const ON_TS = T8 + 1_000; // stamp of the power_on_ack fed in
const OFF_TS = T8 + 2_000; // stamp of the power_off_ack fed in
const LIMIT_TS = T8 + 3_000; // stamp of the terminal's own power_off (limit) fed in
const NOW = T8 + 5_000; // the platform clock
const START_MWH = 120_000_000; // register at power-on of a running session: 120000 Wh

function aSession(override: Partial<SessionCore> = {}): SessionCore {
  return { state: "authorizing", handshakeOk: false, stopReason: null, startedAt: null, startMwh: null, ...override };
}

/** Every state a session can be in, with the handshake flag where it matters. */
const sessions = {
  authorizing: aSession(),
  authorizing_ok: aSession({ handshakeOk: true }),
  active: aSession({ state: "active", handshakeOk: true, startedAt: STARTED, startMwh: START_MWH }),
  stopping: aSession({ state: "stopping", handshakeOk: true, startedAt: STARTED, startMwh: START_MWH, stopReason: "user_stop" }),
  completed: aSession({ state: "completed", handshakeOk: true, startedAt: STARTED, startMwh: START_MWH, stopReason: "target_reached" }),
  failed_handshake: aSession({ state: "failed", handshakeOk: false, stopReason: "handshake_failed" }),
  failed_after_ok: aSession({ state: "failed", handshakeOk: true, stopReason: "terminal_offline" }),
} satisfies Record<string, SessionCore>;
type SessionName = keyof typeof sessions;

/** Every kind of input, with each branch of its data. */
const inputs = {
  hs_ok: { kind: "handshake_result", match: true, terminalCode: "T1", expectedCode: "T1" },
  hs_mismatch: { kind: "handshake_result", match: false, terminalCode: "T1", expectedCode: "T1" },
  hs_wrong_code: { kind: "handshake_result", match: true, terminalCode: "T2", expectedCode: "T1" },
  on_ack: { kind: "power_on_ack", ts: ON_TS, energyWh: 125_000 },
  off_ack_met: { kind: "power_off_ack", ts: OFF_TS, energyWh: 127_000, targetMet: true },
  off_ack_unmet: { kind: "power_off_ack", ts: OFF_TS, energyWh: 126_500, targetMet: false },
  limit: { kind: "terminal_limit", ts: LIMIT_TS, energyWh: 127_250.5, targetMet: false },
  limit_met: { kind: "terminal_limit", ts: LIMIT_TS, energyWh: 127_250.5, targetMet: true },
  stop: { kind: "stop", reason: "user_stop" },
  exp_handshake: { kind: "command_expired", type: "handshake" },
  exp_power_on: { kind: "command_expired", type: "power_on" },
  exp_power_off: { kind: "command_expired", type: "power_off" },
} satisfies Record<string, SessionInput>;
type InputName = keyof typeof inputs;

const handshakeFailed: Transition = {
  patch: { state: "failed", stopReason: "handshake_failed", endedAt: NOW },
  actions: [{ kind: "close_commands", types: ["handshake"], status: "acked" }, { kind: "release" }],
};
const offAckWhileStopping = (energyWh: number): Transition => ({
  patch: { state: "completed", endedAt: OFF_TS },
  actions: [
    { kind: "close_commands", types: ["power_off"], status: "acked" },
    { kind: "settle", end: { ts: OFF_TS, energyWh } },
    { kind: "disarm" },
  ],
});
const closePowerOff: Transition = { patch: {}, actions: [{ kind: "close_commands", types: ["power_off"], status: "acked" }] };
/** The terminal stopped at its own limit: the session ends there, billed on the event's register. */
const endedAtLimit = (stopReason: "limit" | "target_reached" | "user_stop"): Transition => ({
  patch: { state: "completed", endedAt: LIMIT_TS, stopReason },
  actions: [
    { kind: "close_commands", types: ["power_off"], status: "acked" },
    { kind: "settle", end: { ts: LIMIT_TS, energyWh: 127_250.5 } },
    { kind: "disarm" },
  ],
});

/** The whole table: what each input does in each state. `null`: ignored. */
const matrix: Record<SessionName, Record<InputName, Transition | null>> = {
  authorizing: {
    hs_ok: {
      patch: { handshakeOk: true },
      actions: [{ kind: "close_commands", types: ["handshake"], status: "acked" }, { kind: "send_power_on" }],
    },
    hs_mismatch: handshakeFailed,
    hs_wrong_code: handshakeFailed, // the terminal says match, but to a code that is not on record
    on_ack: null, // power on before the identity check passed: not ours to start
    off_ack_met: null,
    off_ack_unmet: null,
    limit: null,
    limit_met: null,
    stop: {
      patch: { state: "failed", stopReason: "user_stop", endedAt: NOW },
      actions: [{ kind: "close_commands", types: ["handshake", "power_on"], status: "cancelled" }, { kind: "release" }],
    },
    exp_handshake: { patch: { state: "failed", stopReason: "handshake_timeout", endedAt: NOW }, actions: [{ kind: "release" }] },
    exp_power_on: null, // no power_on was sent before the handshake passed
    exp_power_off: null,
  },
  authorizing_ok: {
    hs_ok: null, // duplicate after ok
    hs_mismatch: null, // a late contradicting answer does not undo the ok
    hs_wrong_code: null,
    on_ack: {
      patch: { state: "active", startedAt: ON_TS, startWh: 125_000 },
      actions: [
        { kind: "close_commands", types: ["power_on"], status: "acked" },
        { kind: "arm", ts: ON_TS, energyWh: 125_000 },
      ],
    },
    off_ack_met: null,
    off_ack_unmet: null,
    limit: null, // power on never confirmed: the power_on expiry fails the session
    limit_met: null,
    stop: {
      patch: { state: "failed", stopReason: "user_stop", endedAt: NOW },
      actions: [
        { kind: "close_commands", types: ["handshake", "power_on"], status: "cancelled" },
        { kind: "release" },
        { kind: "send_power_off", reason: "user_stop" }, // power_on may already be on its way
      ],
    },
    exp_handshake: null, // it was answered
    exp_power_on: {
      patch: { state: "failed", stopReason: "terminal_offline", endedAt: NOW },
      actions: [{ kind: "release" }, { kind: "send_power_off", reason: "terminal_offline" }],
    },
    exp_power_off: null,
  },
  active: {
    hs_ok: null,
    hs_mismatch: null,
    hs_wrong_code: null,
    // A duplicate ack re-arms from the session's own power-on point (idempotent), nothing else.
    on_ack: { patch: {}, actions: [{ kind: "arm", ts: STARTED, energyWh: 120_000 }] },
    off_ack_met: {
      patch: { state: "completed", endedAt: OFF_TS, stopReason: "target_reached" },
      actions: [{ kind: "settle", end: { ts: OFF_TS, energyWh: 127_000 } }, { kind: "disarm" }],
    },
    off_ack_unmet: {
      patch: { state: "completed", endedAt: OFF_TS, stopReason: "fault" },
      actions: [{ kind: "settle", end: { ts: OFF_TS, energyWh: 126_500 } }, { kind: "disarm" }],
    },
    limit: endedAtLimit("limit"), // stopped by itself short of the target: a money cap or the longest session
    limit_met: endedAtLimit("target_reached"), // the limit was the target: exact where the cloud is a reading late
    stop: {
      patch: { state: "stopping", stopReason: "user_stop", stopRequestedAt: NOW },
      actions: [{ kind: "send_power_off", reason: "user_stop" }],
    },
    exp_handshake: null,
    exp_power_on: null,
    exp_power_off: null,
  },
  stopping: {
    hs_ok: null,
    hs_mismatch: null,
    hs_wrong_code: null,
    on_ack: null,
    // The stop reason asked for stays; targetMet only matters when the terminal stopped by itself.
    off_ack_met: offAckWhileStopping(127_000),
    off_ack_unmet: offAckWhileStopping(126_500),
    // The terminal was off before the power_off reached it: the reason the cloud stopped for stays
    // (so it does not depend on which of the two reached the platform first).
    limit: endedAtLimit("user_stop"),
    limit_met: endedAtLimit("user_stop"),
    stop: null, // already stopping: the first reason wins
    exp_handshake: null,
    exp_power_on: null,
    exp_power_off: { patch: { state: "completed", endedAt: NOW }, actions: [{ kind: "settle", end: "last_seen" }, { kind: "disarm" }] },
  },
  completed: {
    hs_ok: null,
    hs_mismatch: null,
    hs_wrong_code: null,
    on_ack: { patch: {}, actions: [{ kind: "send_power_off", reason: "target_reached" }] },
    off_ack_met: { patch: {}, actions: [{ kind: "disarm" }] },
    off_ack_unmet: { patch: {}, actions: [{ kind: "disarm" }] },
    limit: closePowerOff, // a repeat or a late one: never a disarm, the arm may be the next session's
    limit_met: closePowerOff,
    stop: null,
    exp_handshake: null,
    exp_power_on: null,
    exp_power_off: null,
  },
  failed_handshake: {
    hs_ok: null,
    hs_mismatch: null,
    hs_wrong_code: null,
    on_ack: null, // never told to power on
    off_ack_met: closePowerOff,
    off_ack_unmet: closePowerOff,
    limit: closePowerOff,
    limit_met: closePowerOff,
    stop: null,
    exp_handshake: null,
    exp_power_on: null,
    exp_power_off: null,
  },
  failed_after_ok: {
    hs_ok: null,
    hs_mismatch: null,
    hs_wrong_code: null,
    on_ack: { patch: {}, actions: [{ kind: "send_power_off", reason: "terminal_offline" }] },
    off_ack_met: closePowerOff,
    off_ack_unmet: closePowerOff,
    limit: closePowerOff,
    limit_met: closePowerOff,
    stop: null,
    exp_handshake: null,
    exp_power_on: null,
    exp_power_off: null,
  },
};

const rows = (Object.keys(matrix) as SessionName[]).flatMap((s) =>
  (Object.keys(matrix[s]) as InputName[]).map((i) => ({ s, i, expected: matrix[s][i] })),
);

describe("transition: every state × input", () => {
  it("the table covers every pair", () => {
    expect(rows).toHaveLength(Object.keys(sessions).length * Object.keys(inputs).length);
  });

  it.each(rows)("$s + $i", ({ s, i, expected }) => {
    expect(transition(sessions[s], inputs[i], NOW)).toStrictEqual(expected);
  });

  it.each(rows)("$s + $i does not mutate its arguments", ({ s, i }) => {
    const session = { ...sessions[s] };
    const input = structuredClone(inputs[i]);
    transition(session, input, NOW);
    expect(session).toStrictEqual(sessions[s]);
    expect(input).toStrictEqual(inputs[i]);
  });
});

describe("transition: handshake_result", () => {
  it.each([
    // [match, terminalCode, expectedCode, ok?]
    [true, "T1", "T1", true],
    [false, "T1", "T1", false],
    [true, "T1", "t1", false], // codes compare exactly, case included
    [true, "T1 ", "T1", false],
    [true, "", "T1", false],
    [false, "T2", "T1", false],
  ])("match=%s, terminal %j, on record %j → ok %s", (match, terminalCode, expectedCode, ok) => {
    const t = transition(aSession(), { kind: "handshake_result", match, terminalCode, expectedCode }, NOW);
    expect(t?.patch).toStrictEqual(ok ? { handshakeOk: true } : { state: "failed", stopReason: "handshake_failed", endedAt: NOW });
  });
});

describe("transition: power_on_ack", () => {
  it("re-arms a running session from its power-on point, not from the repeat's stamp or register", () => {
    const t = transition(aSession({ state: "active", handshakeOk: true, startedAt: 1_000, startMwh: 5_000 }), { kind: "power_on_ack", ts: 9_000, energyWh: 10 }, NOW);
    expect(t).toStrictEqual({ patch: {}, actions: [{ kind: "arm", ts: 1_000, energyWh: 5 }] });
  });

  it("ignores a repeat in an active session that has no power-on time", () => {
    expect(transition(aSession({ state: "active", handshakeOk: true, startedAt: null }), inputs.on_ack, NOW)).toBeNull();
  });

  it.each<[SessionStopReason | null, PowerOffReason]>([
    [null, "admin"],
    ["handshake_failed", "admin"],
    ["handshake_timeout", "admin"],
    ["limit", "admin"], // no power_off command carries `limit`: only a terminal reports it
    ["target_reached", "target_reached"],
    ["user_stop", "user_stop"],
    ["fault", "fault"],
    ["credit_exhausted", "credit_exhausted"],
    ["terminal_offline", "terminal_offline"],
    ["admin", "admin"],
  ])("power came on after the session ended (%s): power_off %s for safety", (stopReason, reason) => {
    for (const state of ["failed", "completed"] as const) {
      const t = transition(aSession({ state, handshakeOk: true, stopReason }), inputs.on_ack, NOW);
      expect(t).toStrictEqual({ patch: {}, actions: [{ kind: "send_power_off", reason }] });
    }
  });
});

describe("transition: power_off_ack", () => {
  it.each([
    // [targetMet, stopReason]
    [true, "target_reached"],
    [false, "fault"],
  ] as const)("the terminal switched off by itself, targetMet %s → %s, billed on the ack", (targetMet, stopReason) => {
    const t = transition(sessions.active, { kind: "power_off_ack", ts: 42, energyWh: 125_300.5, targetMet }, NOW);
    expect(t).toStrictEqual({
      patch: { state: "completed", endedAt: 42, stopReason },
      actions: [{ kind: "settle", end: { ts: 42, energyWh: 125_300.5 } }, { kind: "disarm" }],
    });
  });
});

describe("transition: stop", () => {
  const reasons: PowerOffReason[] = ["target_reached", "user_stop", "fault", "credit_exhausted", "terminal_offline", "admin"];

  it.each(reasons)("active, %s → stopping with that reason", (reason) => {
    expect(transition(sessions.active, { kind: "stop", reason }, NOW)).toStrictEqual({
      patch: { state: "stopping", stopReason: reason, stopRequestedAt: NOW },
      actions: [{ kind: "send_power_off", reason }],
    });
  });

  it.each(reasons)("authorizing before the handshake, %s → failed, no power_off", (reason) => {
    expect(transition(sessions.authorizing, { kind: "stop", reason }, NOW)).toStrictEqual({
      patch: { state: "failed", stopReason: reason, endedAt: NOW },
      actions: [{ kind: "close_commands", types: ["handshake", "power_on"], status: "cancelled" }, { kind: "release" }],
    });
  });

  it.each(reasons)("authorizing after the handshake, %s → failed, power_off with that reason", (reason) => {
    expect(transition(sessions.authorizing_ok, { kind: "stop", reason }, NOW)).toStrictEqual({
      patch: { state: "failed", stopReason: reason, endedAt: NOW },
      actions: [
        { kind: "close_commands", types: ["handshake", "power_on"], status: "cancelled" },
        { kind: "release" },
        { kind: "send_power_off", reason },
      ],
    });
  });

  it.each(["stopping", "completed", "failed_handshake", "failed_after_ok"] as const)("%s: a stop changes nothing", (s) => {
    for (const reason of reasons) expect(transition(sessions[s], { kind: "stop", reason }, NOW)).toBeNull();
  });
});

describe("transition: time", () => {
  it.each([0, 1, T8, Number.MAX_SAFE_INTEGER])("platform-clock stamps come from `now` (%s)", (now) => {
    expect(transition(sessions.active, inputs.stop, now)?.patch).toStrictEqual({ state: "stopping", stopReason: "user_stop", stopRequestedAt: now });
    expect(transition(sessions.authorizing, inputs.exp_handshake, now)?.patch.endedAt).toBe(now);
    expect(transition(sessions.stopping, inputs.exp_power_off, now)?.patch.endedAt).toBe(now);
    // ...while an acknowledged end is stamped by the terminal.
    expect(transition(sessions.stopping, inputs.off_ack_met, now)?.patch.endedAt).toBe(OFF_TS);
  });
});
