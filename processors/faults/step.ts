import type { Reading } from "../../contracts/index.ts";
import { refusal, type TerminalView } from "../terminal.ts";
import type { StepLogic, Tick } from "../unit.ts";
import { conditions, overCurrent, readingFaultKinds, type Evidence, type FaultKind, type FaultProfile } from "./rules.ts";

/** One fault kind's life on one terminal. Times are reading times (the terminal's clock). */
export interface Track {
  /** When the condition started holding (while not yet open), or null. */
  since: number | null;
  /** While open: when the condition stopped holding, or null. */
  clearSince: number | null;
  open: boolean;
  /** Whether the condition held at the last reading (a repeat is a new onset while open). */
  holding: boolean;
}

export interface FaultState {
  tracks: Partial<Record<FaultKind, Track>>;
  prev: Reading | null;
  /** Platform time the terminal was last heard from. */
  lastSeenAt: number;
  /** The session a safety stop was already asked for. */
  stoppedSession: string | null;
}

export type FaultEffect =
  | { kind: "open"; fault: FaultKind; at: number; evidence: Evidence }
  | { kind: "repeat"; fault: FaultKind; at: number; evidence: Evidence }
  | { kind: "resolve"; fault: FaultKind; at: number }
  | { kind: "safety_stop"; sessionId: string; at: number; evidence: Evidence };

export type FaultInput =
  /** A reading, from the gateway whose subject it came on, stored at `seenAt`; `session`: the one armed on the terminal. */
  | { kind: "reading"; reading: Reading; gatewayId: string; seenAt: number; session: string | null }
  /** The faults a checkpoint (`<p>_faultstate`) says are open, found at start. */
  | { kind: "restore"; open: FaultKind[] }
  | Tick;

export interface FaultConfig {
  terminal: TerminalView;
  /** The terminal's thresholds (protocol defaults where it sets none). */
  profile: FaultProfile;
  /** No telemetry for this long opens terminal_offline. */
  offlineMs: number;
}

export function emptyFaultState(now: number): FaultState {
  return { tracks: {}, prev: null, lastSeenAt: now, stoppedSession: null };
}

/**
 * When this terminal next needs a tick: its offline deadline, unless terminal_offline is already
 * open. Debounce and clear times are reading times, decided by the readings themselves, so they
 * need no tick. The stage ticks only terminals whose deadline has come (processors/deadlines.ts).
 */
export function faultDueAt(s: FaultState, c: Pick<FaultConfig, "offlineMs">): number | null {
  return s.tracks.terminal_offline?.open ? null : s.lastSeenAt + c.offlineMs;
}

/** Whether a state is worth holding: a terminal heard from, or one with faults restored open. */
export function faultHolds(s: FaultState): boolean {
  return s.prev !== null || Object.keys(s.tracks).length > 0;
}

const idle: Track = { since: null, clearSince: null, open: false, holding: false };

/**
 * The fault processor's pure step: (state, input, now, config) → (state, effects), the same shape
 * as the cutoff step. A condition must hold for `faultDebounceS` of reading time
 * before its fault opens, and be gone for `faultClearS` before it resolves; a new onset while
 * open is a repeat (the fault's count goes up), never a second fault. Register jumps backwards
 * open at once (one reading is the whole evidence). `offlineMs` of platform silence opens
 * terminal_offline (for a terminal registered and in service); the next reading resolves it.
 * Over-current during a session is a safety stop, once per session, and opens its fault at once.
 * A reading from another gateway than the registered one, or dated too far ahead, changes nothing;
 * a checkpoint of another partition's terminal is not restored.
 */
export function faultStep(s: FaultState, input: FaultInput, now: number, c: FaultConfig): { state: FaultState; effects: FaultEffect[] } {
  const { profile: p, offlineMs } = c;
  const effects: FaultEffect[] = [];
  const tracks = { ...s.tracks };
  if (input.kind === "restore") {
    // Partitions: the successor of a dead or departed owner restores its terminals' open faults.
    if (!c.terminal.ours) return { state: s, effects };
    for (const k of input.open) tracks[k] = { since: null, clearSince: null, open: true, holding: true };
    return { state: { ...s, tracks }, effects };
  }
  if (input.kind === "tick") {
    // A terminal taken out of the registry is nobody's to watch; one in maintenance or retired is
    // silent on purpose (its deadline stays, so a return to service is watched).
    if (!c.terminal.info || (c.terminal.info.status ?? "active") !== "active") return { state: s, effects };
    const t = tracks.terminal_offline ?? idle;
    if (!t.open && input.caughtUp && now - s.lastSeenAt >= offlineMs) {
      tracks.terminal_offline = { since: s.lastSeenAt, clearSince: null, open: true, holding: true };
      effects.push({ kind: "open", fault: "terminal_offline", at: now, evidence: { silentForS: Math.floor((now - s.lastSeenAt) / 1000) } });
    }
    return { state: { ...s, tracks }, effects };
  }

  const r = input.reading;
  // Only the registered gateway speaks for a terminal, and not from too far ahead.
  if (refusal(c.terminal, input.gatewayId, r.ts, input.seenAt)) return { state: s, effects };
  const at = r.ts;
  if (tracks.terminal_offline?.open) {
    tracks.terminal_offline = idle;
    // Opened on the platform's clock, so resolved on it too: a backlog reading's own (older) time
    // would make it resolve before it opened.
    effects.push({ kind: "resolve", fault: "terminal_offline", at: Math.max(input.seenAt, now) });
  }
  const now_ = conditions(p, r, s.prev ?? undefined, input.session !== null);
  for (const kind of readingFaultKinds) {
    const t = tracks[kind] ?? idle;
    const ev = now_.get(kind);
    const debounceMs = kind === "register_backwards" ? 0 : p.faultDebounceS * 1000;
    let next: Track = t;
    if (ev) {
      if (!t.open) {
        const since = t.since ?? at;
        if (at - since >= debounceMs) {
          next = { since, clearSince: null, open: true, holding: true };
          effects.push({ kind: "open", fault: kind, at, evidence: ev });
        } else next = { ...t, since, holding: true };
      } else {
        if (!t.holding) effects.push({ kind: "repeat", fault: kind, at, evidence: ev });
        next = { ...t, clearSince: null, holding: true };
      }
    } else if (t.open) {
      const clearSince = t.clearSince ?? at;
      if (at - clearSince >= p.faultClearS * 1000) {
        next = idle;
        effects.push({ kind: "resolve", fault: kind, at });
      } else next = { ...t, clearSince, holding: false };
    } else if (t.since !== null) next = idle;
    if (next !== idle || tracks[kind]) tracks[kind] = next;
  }

  let stoppedSession = s.stoppedSession;
  if (input.session && overCurrent(p, r) && stoppedSession !== input.session) {
    stoppedSession = input.session;
    effects.push({ kind: "safety_stop", sessionId: input.session, at, evidence: { currentA: r.currentA, maxA: p.onCurrentA[1] } });
    // The stop ends the condition at once, so the fault opens now rather than after a debounce
    // it would never complete: the franchisee must hear of it, and the terminal is faulted.
    const t = tracks.on_current_out_of_range;
    if (!t?.open) {
      tracks.on_current_out_of_range = { since: at, clearSince: null, open: true, holding: true };
      effects.push({ kind: "open", fault: "on_current_out_of_range", at, evidence: { currentA: r.currentA, rangeA: [...p.onCurrentA] } });
    }
  }
  return { state: { tracks, prev: r.ts >= (s.prev?.ts ?? -Infinity) ? r : s.prev, lastSeenAt: Math.max(s.lastSeenAt, input.seenAt), stoppedSession }, effects };
}

/** The fault stage's pure logic, as the host's stage runner takes it. */
export const faultLogic: StepLogic<FaultState, FaultInput, FaultEffect, FaultConfig> = { empty: emptyFaultState, step: faultStep, dueAt: faultDueAt, holds: faultHolds };
