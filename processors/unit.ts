import type { Deadlines } from "./deadlines.ts";

/** The input every stage's step takes for a terminal whose deadline has come (processors/stage.ts). */
export interface Tick {
  kind: "tick";
  /** The consumer has read everything the stream holds: its own lag is not a terminal's silence. */
  caughtUp: boolean;
}

/**
 * A stage's pure logic, the same shape for every stage (cutoff, faults): one terminal's state, an
 * input (a reading, an arm change, a restored checkpoint, a tick), the platform's time and the
 * terminal's config in, the new state and the effects as data out. The step also decides whether
 * the input may touch this terminal at all (registration, gateway, partition, session, late or
 * repeated messages): its adapter only does the I/O.
 */
export interface StepLogic<S, I, E, C> {
  /** The state of a terminal nothing is known of yet. */
  empty(now: number): S;
  step(state: S, input: I | Tick, now: number, config: C): { state: S; effects: E[] };
  /** When this terminal next needs a tick, or never (processors/deadlines.ts). */
  dueAt(state: S, config: C): number | null;
  /** Whether the state is worth holding: one that is not is forgotten (it costs no memory). */
  holds(state: S): boolean;
}

/** What a stage holds between units of work. */
export interface Held<S> {
  states: Map<string, S>;
  /** The held states' deadlines, kept in step with them on commit. */
  deadlines: Deadlines;
}

export interface Unit<S, I, E> {
  /** A terminal's state as this unit has it (its own changes seen). */
  state(terminalId: string): S | undefined;
  /** A terminal's state as held before this unit. */
  held(terminalId: string): S | undefined;
  /** Steps one input; returns its effects (also collected in `effects`). */
  apply(terminalId: string, input: I | Tick, now: number): E[];
  /** Every effect of the unit so far, in order, with its terminal. */
  readonly effects: { terminalId: string; effect: E }[];
  /** Keeps the unit's changes: call only once its effects are stored. */
  commit(): void;
}

/**
 * One unit of work of a stage (a batch of readings, arm changes, a tick, the restored
 * checkpoints): its steps see each other's changes, and the held states change only on `commit`.
 * A unit whose effects failed is dropped, so its retry decides the same effects again instead of
 * remembering them as done.
 */
export function beginUnit<S, I, E, C>(held: Held<S>, logic: StepLogic<S, I, E, C>, config: (terminalId: string) => C): Unit<S, I, E> {
  const changed = new Map<string, S | null>();
  const effects: { terminalId: string; effect: E }[] = [];
  const state = (id: string) => (changed.has(id) ? (changed.get(id) ?? undefined) : held.states.get(id));
  return {
    state,
    held: (id) => held.states.get(id),
    apply(terminalId, input, now) {
      const res = logic.step(state(terminalId) ?? logic.empty(now), input, now, config(terminalId));
      changed.set(terminalId, logic.holds(res.state) ? res.state : null);
      for (const effect of res.effects) effects.push({ terminalId, effect });
      return res.effects;
    },
    effects,
    commit() {
      for (const [id, st] of changed) {
        if (st) held.states.set(id, st);
        else held.states.delete(id);
        held.deadlines.set(id, st ? logic.dueAt(st, config(id)) : null);
      }
    },
  };
}
