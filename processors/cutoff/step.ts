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
import { refusal, type TerminalView } from "../terminal.ts";
import type { StepLogic, Tick } from "../unit.ts";

/** Everything the cutoff processor knows about one terminal. */
export interface TerminalState {
  arm: Arm | null;
  tariff: Tariff | null;
  meter: Meter | null;
  /** The cutoff already asked for this meter's session, if any: asked once, not per reading. */
  cutoff: Cutoff["reason"] | null;
  /** Platform time (stream clock) of the last reading seen, or of arming/restoring. */
  lastSeenAt: number;
  /**
   * The older static split only (`config.partitioned`): this instance has made the terminal its
   * own (restored its checkpoint, or read it), and the arm that came before that, waiting for it.
   */
  owned: boolean;
  waitingArm: Arm | null;
}

export type CutoffInput =
  | { kind: "arm"; arm: Arm }
  | { kind: "disarm" }
  /** A reading, from the gateway whose subject it came on, stored by the stream at `seenAt`. */
  | { kind: "reading"; reading: Reading; gatewayId: string; seenAt: number }
  /** A checkpoint found in the meters bucket at start (`owner`: the durable that wrote it). */
  | { kind: "restore"; record: { meter: Meter; cutoff: Cutoff["reason"] | null; owner?: string } }
  /** A second passed; `caughtUp` says the processor has read everything the stream holds. */
  | Tick;

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
    }
  /**
   * The terminal's newest reading is wanted now: a session armed afresh may have been armed after
   * the reading that already reached its target (the control service was busy). Not a change: the
   * adapter looks it up and steps it in the same unit.
   */
  | { kind: "read_newest"; terminalId: string };

export interface CutoffConfig {
  terminal: TerminalView;
  /** A session whose terminal is silent this long is cut `terminal_offline`. */
  silenceMs: number;
  /**
   * The older static split (a filter subject per instance, docs/architecture.md): a terminal is
   * this instance's once it restored its checkpoint or read it, and only then are its arms stepped.
   */
  partitioned: boolean;
  /** The durable consumer's name: who owns a checkpoint, in the static split. */
  owner: string;
}

export function emptyState(now: number): TerminalState {
  return { arm: null, tariff: null, meter: null, cutoff: null, lastSeenAt: now, owned: false, waitingArm: null };
}

/**
 * When this terminal next needs a tick: its session's silence deadline (an armed meter not yet
 * cut), or never. The stage ticks only terminals whose deadline has come (processors/deadlines.ts),
 * so the step's own rule decides, and a terminal with no session costs nothing per second.
 */
export function dueAt(s: TerminalState, c: Pick<CutoffConfig, "silenceMs">): number | null {
  return s.arm && s.meter && !s.cutoff ? s.lastSeenAt + c.silenceMs : null;
}

/** Whether a state is worth holding: a session, or (static split) what this instance owns or waits for. */
export function holds(s: TerminalState): boolean {
  return s.arm !== null || s.meter !== null || s.waitingArm !== null || s.owned;
}

/**
 * Whether a reading of this terminal can change anything here, so is worth parsing: a session, or
 * (static split) a terminal not yet owned (its first reading makes it ours, with any waiting arm).
 * Most of the fleet has no session most of the time, and costs nothing.
 */
export function wants(s: TerminalState | undefined, c: Pick<CutoffConfig, "partitioned">): boolean {
  if (!s) return c.partitioned;
  return s.arm !== null || s.meter !== null || s.waitingArm !== null || (c.partitioned && !s.owned);
}

/**
 * Whether an arm change of this terminal concerns this instance: it speaks for the terminal, or
 * holds a session of it (which still takes its disarm after the terminal moved partition). The
 * step decides with it; the adapter asks it too, so other partitions' arms are not even parsed.
 */
export function takesArms(s: TerminalState | undefined, c: Pick<CutoffConfig, "terminal">): boolean {
  return c.terminal.ours || (s !== undefined && (s.arm !== null || s.meter !== null));
}

/**
 * The cutoff processor's pure step: (state, input, now, config) → (state, effects). It decides
 * what the input may touch: another partition's arms and checkpoints, readings from a gateway
 * other than the registered one (or dated too far ahead), and readings at or before the meter's
 * last change nothing; an arm of the session already metered keeps its meter.
 */
export function step(s: TerminalState, e: CutoffInput, now: number, c: CutoffConfig): { state: TerminalState; effects: CutoffEffect[] } {
  const terminalId = c.terminal.terminalId;
  const same = { state: s, effects: [] };
  switch (e.kind) {
    case "restore": {
      // Static split: only the durable that wrote a checkpoint restores it. Partitions: the
      // successor of a dead or departed owner restores its terminals' meters.
      if ((c.partitioned && e.record.owner !== c.owner) || !c.terminal.ours) return same;
      return { state: { ...s, meter: e.record.meter, cutoff: e.record.cutoff, owned: c.partitioned }, effects: [] };
    }
    case "arm":
    case "disarm": {
      // Another partition's terminal is its owner's to cut.
      if (!takesArms(s, c)) return same;
      if (c.partitioned && !s.owned) return { state: { ...s, waitingArm: e.kind === "arm" ? e.arm : null }, effects: [] };
      if (e.kind === "disarm")
        return {
          state: { ...emptyState(s.lastSeenAt), owned: s.owned },
          effects: s.meter ? [{ kind: "drop_meter", terminalId }] : [],
        };
      const res = arm(s, e.arm, now, terminalId);
      // A new meter: the reading that reached its target may already be in the stream.
      if (res.effects.length > 0) res.effects.push({ kind: "read_newest", terminalId });
      return res;
    }
    case "reading": {
      if (refusal(c.terminal, e.gatewayId, e.reading.ts, e.seenAt)) return same;
      if (c.partitioned && !s.owned) {
        // Its first reading makes the terminal ours, with the arm that waited for it.
        const owned = { ...s, owned: true, waitingArm: null };
        const armed = s.waitingArm ? arm(owned, s.waitingArm, now, terminalId) : { state: owned, effects: [] };
        const read = reading(armed.state, e.reading, e.seenAt, now, terminalId);
        return { state: read.state, effects: [...armed.effects, ...read.effects] };
      }
      return reading(s, e.reading, e.seenAt, now, terminalId);
    }
    case "tick": {
      if (!s.arm || !s.meter || s.cutoff || !e.caughtUp || now - s.lastSeenAt < c.silenceMs) return same;
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

function arm(s: TerminalState, a: Arm, now: number, terminalId: string): { state: TerminalState; effects: CutoffEffect[] } {
  const tariff = toTariff(a.tariff.version, a.tariff.timezone, a.tariff.periods);
  // A restored meter of the same session is kept (a repeated arm); anything else starts from the power-on point.
  if (s.meter?.sessionId === a.sessionId) return { state: { ...s, arm: a, tariff }, effects: [] };
  const meter = startMeter(a.sessionId, a.startTs, a.startWh);
  return {
    state: { ...s, arm: a, tariff, meter, cutoff: null, lastSeenAt: now },
    effects: [{ kind: "save_meter", terminalId, meter, cutoff: null }],
  };
}

function reading(s: TerminalState, r: Reading, seenAt: number, now: number, terminalId: string): { state: TerminalState; effects: CutoffEffect[] } {
  const seen = { ...s, lastSeenAt: Math.max(s.lastSeenAt, seenAt) };
  const { arm, tariff, meter } = s;
  // No session, or a reading at or before the meter's last (late, or repeated): only "seen".
  if (!arm || !tariff || !meter || r.ts <= meter.lastTs) return { state: seen, effects: [] };
  const prevFee = exactFee(meter, tariff);
  const next = advance(meter, tariff, r.ts, r.energyWh);
  const effects: CutoffEffect[] = [];
  let cutoff = s.cutoff;
  if (!cutoff) {
    const reason = decideCutoff(arm, tariff, next, prevFee);
    if (reason) {
      cutoff = reason;
      effects.push({
        kind: "cutoff",
        cutoff: { sessionId: arm.sessionId, terminalId, reason, ts: r.ts, decidedAt: now },
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
    powerW: r.powerW ?? r.currentA * r.voltageV,
    ts: r.ts,
  });
  return { state: { ...seen, meter: next, cutoff }, effects };
}

/** The cutoff stage's pure logic, as the host's stage runner takes it. */
export const cutoffLogic: StepLogic<TerminalState, CutoffInput, CutoffEffect, CutoffConfig> = { empty: emptyState, step, dueAt, holds };
