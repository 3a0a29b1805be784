import type { PowerOffReason, SessionState, SessionStopReason } from "../../contracts/index.ts";

/** The part of a session the state machine decides on. */
export interface SessionCore {
  state: SessionState;
  handshakeOk: boolean;
  stopReason: SessionStopReason | null;
  startedAt: number | null;
  /** The register at power-on, in mWh. */
  startMwh: number | null;
}

export type CommandType = "handshake" | "power_on" | "power_off";

export type SessionInput =
  | { kind: "handshake_result"; match: boolean; terminalCode: string; expectedCode: string }
  | { kind: "power_on_ack"; ts: number; energyWh: number }
  | { kind: "power_off_ack"; ts: number; energyWh: number; targetMet: boolean }
  /** The terminal's `power_off` event: it switched off by itself at its power_on limits. */
  | { kind: "terminal_limit"; ts: number; energyWh: number; targetMet: boolean }
  | { kind: "stop"; reason: PowerOffReason }
  | { kind: "command_expired"; type: CommandType };

export type SessionAction =
  | { kind: "send_power_on" }
  | { kind: "send_power_off"; reason: PowerOffReason }
  | { kind: "close_commands"; types: CommandType[]; status: "acked" | "cancelled" }
  /** Bill the session and settle the wallet: on the acknowledged register, or the last one seen. */
  | { kind: "settle"; end: { ts: number; energyWh: number } | "last_seen" }
  /** End with nothing billed: release a prepaid hold. */
  | { kind: "release" }
  | { kind: "arm"; ts: number; energyWh: number }
  | { kind: "disarm" };

export interface Transition {
  patch: Partial<Omit<SessionCore, "startMwh">> & { endedAt?: number; stopRequestedAt?: number; startWh?: number };
  actions: SessionAction[];
}

const ignore = null;

/**
 * The session state machine, pure: given the session, an input and the time, what changes and
 * what must be done. `null` means the input changes nothing (a repeat, or too late to matter).
 * Repeats that could follow a lost effect re-issue the effect (arm, disarm), which is idempotent.
 */
export function transition(s: SessionCore, input: SessionInput, now: number): Transition | null {
  switch (input.kind) {
    case "handshake_result": {
      if (s.state !== "authorizing" || s.handshakeOk) return ignore;
      if (input.match && input.terminalCode === input.expectedCode)
        return {
          patch: { handshakeOk: true },
          actions: [{ kind: "close_commands", types: ["handshake"], status: "acked" }, { kind: "send_power_on" }],
        };
      return {
        patch: { state: "failed", stopReason: "handshake_failed", endedAt: now },
        actions: [{ kind: "close_commands", types: ["handshake"], status: "acked" }, { kind: "release" }],
      };
    }
    case "power_on_ack": {
      if (s.state === "authorizing" && s.handshakeOk)
        return {
          patch: { state: "active", startedAt: input.ts, startWh: input.energyWh },
          actions: [
            { kind: "close_commands", types: ["power_on"], status: "acked" },
            { kind: "arm", ts: input.ts, energyWh: input.energyWh },
          ],
        };
      // A repeat re-arms from the session's own power-on point, whatever register the repeat carries.
      if (s.state === "active" && s.startedAt !== null && s.startMwh !== null)
        return { patch: {}, actions: [{ kind: "arm", ts: s.startedAt, energyWh: s.startMwh / 1000 }] };
      // Power came on for a session that already ended (stopped while power_on was in flight):
      // switch it off again, never leave a terminal delivering unbilled power.
      if ((s.state === "failed" || s.state === "completed") && s.handshakeOk)
        return { patch: {}, actions: [{ kind: "send_power_off", reason: toPowerOffReason(s.stopReason) }] };
      return ignore;
    }
    case "power_off_ack": {
      if (s.state === "stopping")
        return {
          patch: { state: "completed", endedAt: input.ts },
          actions: [
            { kind: "close_commands", types: ["power_off"], status: "acked" },
            { kind: "settle", end: { ts: input.ts, energyWh: input.energyWh } },
            { kind: "disarm" },
          ],
        };
      // The terminal switched off by itself (its own limit, or a local stop).
      if (s.state === "active")
        return {
          patch: { state: "completed", endedAt: input.ts, stopReason: input.targetMet ? "target_reached" : "fault" },
          actions: [{ kind: "settle", end: { ts: input.ts, energyWh: input.energyWh } }, { kind: "disarm" }],
        };
      if (s.state === "completed") return { patch: {}, actions: [{ kind: "disarm" }] };
      if (s.state === "failed") return { patch: {}, actions: [{ kind: "close_commands", types: ["power_off"], status: "acked" }] };
      return ignore;
    }
    case "terminal_limit": {
      // Power is off at the terminal's own limit, whether or not the cloud had asked meanwhile
      // (the event precedes the answer to that power_off on the terminal's subject): the session
      // ends there, billed on the register it reports, and a power_off still being repeated is
      // answered. A limit that is the user's own target (the terminal is exact where the cloud
      // is a reading late) reached the target; any other (a money cap, the longest session) is
      // `limit`. A session the cloud was already stopping keeps the cloud's reason (a postpaid
      // cap is cut `credit_exhausted` a reading early, and the terminal's limit only backs it up),
      // so the reason does not depend on which of the two reached the platform first.
      if (s.state === "active" || s.state === "stopping")
        return {
          patch: {
            state: "completed",
            endedAt: input.ts,
            stopReason: s.state === "stopping" && s.stopReason ? s.stopReason : input.targetMet ? "target_reached" : "limit",
          },
          actions: [
            { kind: "close_commands", types: ["power_off"], status: "acked" },
            { kind: "settle", end: { ts: input.ts, energyWh: input.energyWh } },
            { kind: "disarm" },
          ],
        };
      // A repeat, or a late one: it only closes this session's own power_off commands. It never
      // disarms, since the terminal's arm may by now be a newer session's.
      if (s.state === "completed" || s.state === "failed")
        return { patch: {}, actions: [{ kind: "close_commands", types: ["power_off"], status: "acked" }] };
      // Authorizing: power_on was never confirmed, so nothing can be billed; the power_on's expiry
      // fails the session (and sends power_off) as for any unconfirmed power-on.
      return ignore;
    }
    case "stop": {
      if (s.state === "active")
        return {
          patch: { state: "stopping", stopReason: input.reason, stopRequestedAt: now },
          actions: [{ kind: "send_power_off", reason: input.reason }],
        };
      if (s.state === "authorizing")
        return {
          patch: { state: "failed", stopReason: input.reason, endedAt: now },
          actions: [
            { kind: "close_commands", types: ["handshake", "power_on"], status: "cancelled" },
            { kind: "release" },
            ...(s.handshakeOk ? [{ kind: "send_power_off" as const, reason: input.reason }] : []),
          ],
        };
      return ignore;
    }
    case "command_expired": {
      if (input.type === "handshake" && s.state === "authorizing" && !s.handshakeOk)
        return { patch: { state: "failed", stopReason: "handshake_timeout", endedAt: now }, actions: [{ kind: "release" }] };
      // The terminal never confirmed power on: it may or may not be on, so switch it off to be safe.
      if (input.type === "power_on" && s.state === "authorizing" && s.handshakeOk)
        return {
          patch: { state: "failed", stopReason: "terminal_offline", endedAt: now },
          actions: [{ kind: "release" }, { kind: "send_power_off", reason: "terminal_offline" }],
        };
      // No answer to power off: bill on the last register seen and end the session.
      if (input.type === "power_off" && s.state === "stopping")
        return { patch: { state: "completed", endedAt: now }, actions: [{ kind: "settle", end: "last_seen" }, { kind: "disarm" }] };
      return ignore;
    }
  }
}

function toPowerOffReason(r: SessionStopReason | null): PowerOffReason {
  return r === null || r === "handshake_failed" || r === "handshake_timeout" || r === "limit" ? "admin" : r;
}

/** States a session never leaves. */
const ended = (state: SessionState) => state === "completed" || state === "failed";

/**
 * Whether an input is a repeat that the session's committed state `s` (read without its row lock)
 * already shows handled, and the idempotent effects that the locked transition would re-issue for
 * it, none of which needs the lock; null when the input must go through the locked transition.
 * Terminals answer every repeated command with its event again, so under load most events are
 * such repeats (issue 17: two thirds of the control service's round trips in the scale benchmark).
 *
 * The answer is the locked transition's at the moment `s` was read, which is a state the session
 * was in: either a state it never leaves (completed, failed: the locked transition computes the
 * same), or a condition never entered again (a handshake result once the session is past waiting
 * for one), or a re-arm of an active session, which the caller does only if the terminal's arm
 * does not already name the session (the locked transition would find that entry and write
 * nothing). Every effect returned is a close of the session's own commands or the removal of its
 * own arm: compare-and-set, harmless to repeat.
 */
export function repeatOf(s: SessionCore, input: SessionInput): SessionAction[] | null {
  const t = transition(s, input, 0);
  if (ended(s.state)) {
    if (!t) return [];
    const onlyRepeats = Object.keys(t.patch).length === 0 && t.actions.every((a) => a.kind === "close_commands" || a.kind === "disarm");
    return onlyRepeats ? t.actions : null;
  }
  // handshake_result acts only while authorizing with no handshake yet: once past it, never again.
  if (input.kind === "handshake_result") return t ? null : [];
  // A repeated power_on_ack of an active session re-arms from the session's own power-on point.
  if (input.kind === "power_on_ack" && s.state === "active" && t && Object.keys(t.patch).length === 0 && t.actions.every((a) => a.kind === "arm"))
    return t.actions;
  return null;
}
