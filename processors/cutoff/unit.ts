import type { Deadlines } from "../deadlines.ts";
import { dueAt, emptyState, step, type CutoffEffect, type CutoffEvent, type StepOptions, type TerminalState } from "./step.ts";

type ArmEvent = CutoffEvent & { kind: "arm" };

/** What the cutoff stage holds between units of work. */
export interface HeldStates {
  states: Map<string, TerminalState>;
  /** Partitioned: terminals this instance owns (restored, or read from). */
  owned: Set<string>;
  /** Partitioned: arms of terminals not (yet) owned, until their first reading makes them ours. */
  waitingArms: Map<string, ArmEvent>;
  /** Silence deadlines of the held states, kept in step with them on commit. */
  deadlines?: Deadlines;
}

export interface Unit {
  state(terminalId: string): TerminalState | undefined;
  apply(terminalId: string, e: CutoffEvent, at: number): CutoffEffect[];
  /** A reading's first sight of its terminal makes it ours, with the arm that waited for it. */
  own(terminalId: string, at: number): CutoffEffect[];
  /** Keeps the unit's changes: call only once its effects are stored. */
  commit(): void;
}

/**
 * One unit of work of the cutoff stage (a batch, the arm changes waiting, a tick): its steps see each
 * other's changes, and the held states change only on `commit`. A unit whose effects failed is
 * dropped, so its retry decides the same cutoff again instead of remembering it as sent.
 */
export function beginUnit(held: HeldStates, o: { partitioned: boolean; step: StepOptions }): Unit {
  const changed = new Map<string, TerminalState | null>();
  const nowOwned = new Set<string>();
  const waits = new Map<string, ArmEvent | null>();
  const state = (id: string) => (changed.has(id) ? (changed.get(id) ?? undefined) : held.states.get(id));
  const isOwned = (id: string) => held.owned.has(id) || nowOwned.has(id);
  const waiting = (id: string) => (waits.has(id) ? (waits.get(id) ?? undefined) : held.waitingArms.get(id));
  const apply = (terminalId: string, e: CutoffEvent, at: number): CutoffEffect[] => {
    if (o.partitioned && !isOwned(terminalId)) {
      if (e.kind === "arm") waits.set(terminalId, e);
      if (e.kind === "disarm") waits.set(terminalId, null);
      return [];
    }
    const res = step(terminalId, state(terminalId) ?? emptyState(at), e, at, o.step);
    changed.set(terminalId, res.state.arm || res.state.meter ? res.state : null);
    return res.effects;
  };
  return {
    state,
    apply,
    own(terminalId, at) {
      if (isOwned(terminalId)) return [];
      nowOwned.add(terminalId);
      const arm = waiting(terminalId);
      waits.set(terminalId, null);
      return arm ? apply(terminalId, arm, at) : [];
    },
    commit() {
      for (const [id, st] of changed) {
        if (st) held.states.set(id, st);
        else held.states.delete(id);
        held.deadlines?.set(id, st ? dueAt(st, o.step) : null);
      }
      for (const id of nowOwned) held.owned.add(id);
      for (const [id, a] of waits) {
        if (a) held.waitingArms.set(id, a);
        else held.waitingArms.delete(id);
      }
    },
  };
}
