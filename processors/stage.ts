import type { Logger } from "pino";
import { Deadlines } from "./deadlines.ts";
import { serialQueue } from "./serial.ts";
import { beginUnit, type Held, type StepLogic, type Unit } from "./unit.ts";

export interface TerminalStagesOptions<S, I, E, C> {
  /** For logs. */
  name: string;
  logic: StepLogic<S, I, E, C>;
  /** A terminal's config for its step (the stage's options and the host's `TerminalView`). */
  config(terminalId: string): C;
  /**
   * Runs a unit's effects and resolves once they are stored; the unit's states are kept only
   * after (effects before the state that records them). A throw drops the unit.
   */
  run(unit: Unit<S, I, E>): Promise<void>;
  clock(): number;
  /** Whether the consumer has read everything the stream holds (ticks decide nothing until then). */
  caughtUp(): boolean;
  log: Logger;
  /** @default 1000 */
  tickMs?: number;
}

/** The per-terminal states of one stage, and the one way to change them. */
export interface TerminalStages<S, I, E> {
  /** The held states (read-only: for the stage's `want` filter). */
  readonly states: ReadonlyMap<string, S>;
  /**
   * One unit of work: `fill` steps its inputs (it may do I/O first, as the late-arm look-up does),
   * then its effects are run, then its states are kept. Units run one at a time, in call order,
   * with the ticks between them: state changes and their effects never interleave.
   */
  unit<T>(fill: (u: Unit<S, I, E>) => T | Promise<T>): Promise<T>;
  /** Stops the ticks and waits for the units already asked for. */
  stop(): Promise<void>;
}

/**
 * What both stages (cutoff, faults) share, as the host's part of a stage: the held states, the
 * serial execution of units of work, and the deadline tick. Each second only the terminals whose
 * deadline has come are ticked (a heap, not a sweep over every terminal, docs/scaling.md). A tick
 * whose effects fail changes nothing, and its terminals are due again at once; a tick the step
 * declines (not caught up, a terminal out of service) leaves the deadline in the past, so it is
 * looked at again next second.
 */
export function startTerminalStages<S, I, E, C>(o: TerminalStagesOptions<S, I, E, C>): TerminalStages<S, I, E> {
  const held: Held<S> = { states: new Map(), deadlines: new Deadlines() };
  const serial = serialQueue();
  const unit = <T>(fill: (u: Unit<S, I, E>) => T | Promise<T>): Promise<T> =>
    serial(async () => {
      const u = beginUnit(held, o.logic, o.config);
      const out = await fill(u);
      await o.run(u);
      u.commit();
      return out;
    });

  const timer = setInterval(() => {
    void serial(async () => {
      const at = o.clock();
      const due = held.deadlines.takeDue(at);
      if (due.length === 0) return;
      try {
        const u = beginUnit(held, o.logic, o.config);
        const caughtUp = o.caughtUp();
        for (const terminalId of due) if (u.state(terminalId)) u.apply(terminalId, { kind: "tick", caughtUp }, at);
        await o.run(u);
        u.commit();
      } finally {
        // What the commit did not reschedule (the unit failed) keeps its deadline.
        for (const terminalId of due) {
          const st = held.states.get(terminalId);
          if (held.deadlines.get(terminalId) === undefined && st) held.deadlines.set(terminalId, o.logic.dueAt(st, o.config(terminalId)));
        }
      }
    }).catch((err) => o.log.error({ err }, `${o.name} tick failed`));
  }, o.tickMs ?? 1000);

  return {
    states: held.states,
    unit,
    async stop() {
      clearInterval(timer);
      await serial(async () => {});
    },
  };
}
