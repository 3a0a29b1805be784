import {
  advance,
  deliveredMwh,
  elapsedMs,
  exactFee,
  mwhToWh,
  startMeter,
  toTariff,
  billedCents,
  type Arm,
  type Cutoff,
  type Meter,
  type Reading,
  type Tariff,
} from "../../contracts/index.ts";
import { decideCutoff } from "./decide.ts";

/** Everything the cutoff processor knows about one terminal. */
export interface TerminalState {
  arm: Arm | null;
  tariff: Tariff | null;
  meter: Meter | null;
  /** The cutoff already asked for this meter's session, if any: asked once, not per reading. */
  cutoff: Cutoff["reason"] | null;
  /** Platform time (stream clock) of the last reading seen, or of arming/restoring. */
  lastSeenAt: number;
}

export type CutoffEvent =
  | { kind: "arm"; arm: Arm }
  | { kind: "disarm" }
  | { kind: "reading"; reading: Reading; seenAt: number }
  /** A second passed; `caughtUp` says the processor has read everything the stream holds. */
  | { kind: "tick"; caughtUp: boolean };

export type CutoffEffect =
  | { kind: "cutoff"; cutoff: Cutoff }
  | { kind: "save_meter"; terminalId: string; meter: Meter; cutoff: Cutoff["reason"] | null }
  | { kind: "drop_meter"; terminalId: string }
  | {
      kind: "progress";
      sessionId: string;
      terminalId: string;
      energyWh: number;
      durationS: number;
      feeCents: number;
      powerW: number;
      ts: number;
    };

export interface StepOptions {
  /** A session whose terminal is silent this long is cut `terminal_offline`. */
  silenceMs: number;
}

export function emptyState(now: number): TerminalState {
  return { arm: null, tariff: null, meter: null, cutoff: null, lastSeenAt: now };
}

/**
 * When this terminal next needs a tick: its session's silence deadline (an armed meter not yet
 * cut), or never. The stage ticks only terminals whose deadline has come (processors/deadlines.ts),
 * so the step's own rule decides, and a terminal with no session costs nothing per second.
 */
export function dueAt(s: TerminalState, o: StepOptions): number | null {
  return s.arm && s.meter && !s.cutoff ? s.lastSeenAt + o.silenceMs : null;
}

/** The cutoff processor's pure step: (state, event, now) → (state, effects). */
export function step(
  terminalId: string,
  s: TerminalState,
  e: CutoffEvent,
  now: number,
  o: StepOptions,
): { state: TerminalState; effects: CutoffEffect[] } {
  switch (e.kind) {
    case "arm": {
      const a = e.arm;
      const tariff = toTariff(a.tariff.version, a.tariff.timezone, a.tariff.periods);
      // A restored meter of the same session is kept; anything else starts from the power-on point.
      if (s.meter?.sessionId === a.sessionId) return { state: { ...s, arm: a, tariff }, effects: [] };
      const meter = startMeter(a.sessionId, a.startTs, a.startWh);
      return {
        state: { arm: a, tariff, meter, cutoff: null, lastSeenAt: now },
        effects: [{ kind: "save_meter", terminalId, meter, cutoff: null }],
      };
    }
    case "disarm":
      return {
        state: { ...emptyState(s.lastSeenAt) },
        effects: s.meter ? [{ kind: "drop_meter", terminalId }] : [],
      };
    case "reading": {
      const seen = { ...s, lastSeenAt: Math.max(s.lastSeenAt, e.seenAt) };
      const { arm, tariff, meter } = s;
      if (!arm || !tariff || !meter || e.reading.ts <= meter.lastTs) return { state: seen, effects: [] };
      const prevFee = exactFee(meter, tariff);
      const next = advance(meter, tariff, e.reading.ts, e.reading.energyWh);
      const effects: CutoffEffect[] = [];
      let cutoff = s.cutoff;
      if (!cutoff) {
        const reason = decideCutoff(arm, tariff, next, prevFee);
        if (reason) {
          cutoff = reason;
          effects.push({
            kind: "cutoff",
            cutoff: { sessionId: arm.sessionId, terminalId, reason, ts: e.reading.ts, decidedAt: now },
          });
        }
      }
      effects.push({ kind: "save_meter", terminalId, meter: next, cutoff });
      effects.push({
        kind: "progress",
        sessionId: arm.sessionId,
        terminalId,
        energyWh: mwhToWh(deliveredMwh(next)),
        durationS: Math.floor(elapsedMs(next) / 1000),
        feeCents: billedCents(exactFee(next, tariff), arm.capCents),
        powerW: e.reading.powerW ?? e.reading.currentA * e.reading.voltageV,
        ts: e.reading.ts,
      });
      return { state: { ...seen, meter: next, cutoff }, effects };
    }
    case "tick": {
      if (!s.arm || !s.meter || s.cutoff || !e.caughtUp || now - s.lastSeenAt < o.silenceMs) return { state: s, effects: [] };
      const cutoff: Cutoff = {
        sessionId: s.arm.sessionId,
        terminalId,
        reason: "terminal_offline",
        ts: s.meter.lastTs,
        decidedAt: now,
      };
      return {
        state: { ...s, cutoff: "terminal_offline" },
        effects: [
          { kind: "cutoff", cutoff },
          { kind: "save_meter", terminalId, meter: s.meter, cutoff: "terminal_offline" },
        ],
      };
    }
  }
}
