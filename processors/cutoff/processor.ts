import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { shared } from "../metrics.ts";
import { Counter, Histogram, type Registry } from "prom-client";
import { armSchema, meterToJson, readingSchema, segments, type MeterMessage, type Subjects } from "../../contracts/index.ts";
import type { Buckets, TelemetryItem } from "../../ingest/index.ts";
import { startProcessorHost, type RunningProcessor, type Stage, type StageContext } from "../host.ts";
import { followBucket } from "../follow.ts";
import { serialQueue } from "../serial.ts";
import { Deadlines } from "../deadlines.ts";
import { dueAt, emptyState, type CutoffEffect, type CutoffEvent, type TerminalState } from "./step.ts";
import { beginUnit, type HeldStates } from "./unit.ts";
import { encodeMeterRecord, loadAllMeters } from "./store.ts";

export interface CutoffStageOptions {
  nc: NatsConnection;
  subjects: Subjects;
  buckets: Buckets;
  log: Logger;
  registry: Registry;
  clock: () => number;
  /** A session whose terminal is silent this long is cut `terminal_offline`. */
  silenceMs: number;
  /** @default 1000 */
  tickMs?: number;
}

export interface CutoffProcessorOptions extends CutoffStageOptions {
  /**
   * Durable consumer name and filter; a partitioned deployment runs one processor per partition
   * with its own durable and a filter on the partition's subjects (see docs/scaling.md).
   * @default durable `<prefix>_cutoff`, no filter
   */
  durable?: string;
  filterSubject?: string;
}

export type { RunningProcessor };

/** The cutoff stage on a consumer of its own (a partition, or a deployment without faults). */
export function startCutoffProcessor(o: CutoffProcessorOptions): Promise<RunningProcessor> {
  return startProcessorHost({
    nc: o.nc,
    subjects: o.subjects,
    log: o.log,
    clock: o.clock,
    durable: o.durable ?? o.subjects.consumer("cutoff"),
    terminals: o.buckets.terminals,
    registry: o.registry,
    ...(o.filterSubject ? { filterSubject: o.filterSubject } : {}),
    // A cutoff waits behind at most this many readings.
    maxBatch: 1000,
    maxAckPending: 5000,
    stages: [(ctx) => cutoffStage(o, ctx)],
  });
}

/**
 * The NATS side of the cutoff step: restores checkpoints, follows arms, feeds readings and
 * ticks through `step`, runs the effects, and only then lets the consumer acknowledge.
 */
export async function cutoffStage(o: CutoffStageOptions, ctx: StageContext): Promise<Stage> {
  const { subjects: s, buckets, log } = o;
  const js = jetstream(o.nc);
  const serial = serialQueue();
  const states = new Map<string, TerminalState>();
  const stepOpts = { silenceMs: o.silenceMs };
  const cutoffs = shared(o.registry, "vend_cutoffs_total", () => new Counter({ name: "vend_cutoffs_total", help: "Cutoffs decided", labelNames: ["reason"], registers: [o.registry] }));
  const batchSeconds = shared(o.registry, "vend_cutoff_batch_seconds", () => new Histogram({
    name: "vend_cutoff_batch_seconds",
    help: "Time to process one batch of telemetry in the cutoff processor",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [o.registry],
  }));
  const decisionSeconds = shared(o.registry, "vend_cutoff_decision_seconds", () => new Histogram({
    name: "vend_cutoff_decision_seconds",
    help: "From JetStream storing the reading that reached a cutoff to the processor deciding it",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [o.registry],
  }));

  const durable = ctx.owner;
  // Partitioned (a filter set): act only on terminals this instance owns, restored or read from.
  const partitioned = ctx.partitioned;
  const owned = new Set<string>();

  const now = o.clock();
  for (const [terminalId, r] of await loadAllMeters(buckets.meters)) {
    if (partitioned && r.owner !== durable) continue;
    // Partitions: the successor of a dead or departed owner restores its terminals' meters.
    if (!ctx.owns(terminalId)) continue;
    owned.add(terminalId);
    states.set(terminalId, { ...emptyState(now), meter: r.meter, cutoff: r.cutoff });
  }

  const deadlines = new Deadlines();
  for (const [terminalId, st] of states) deadlines.set(terminalId, dueAt(st, stepOpts));
  const held: HeldStates = { states, owned, waitingArms: new Map(), deadlines };
  // Every batch, set of waiting arm changes and tick is a unit: its changes are kept only after its effects are stored.
  const begin = () => beginUnit(held, { partitioned, step: stepOpts });

  // The message id makes a repeat (a retried unit, a restart) one cutoff in the stream.
  const publish = (subject: string, data: string, msgID: string) => js.publish(subject, data, { msgID });
  const run = async (effects: CutoffEffect[]): Promise<void> => {
    const saves = new Map<string, CutoffEffect & { kind: "save_meter" }>();
    const first: Promise<unknown>[] = [];
    for (const e of effects) {
      switch (e.kind) {
        case "cutoff":
          cutoffs.inc({ reason: e.cutoff.reason });
          first.push(publish(s.cutoff(e.cutoff.terminalId), JSON.stringify(e.cutoff), `cutoff:${e.cutoff.sessionId}`));
          break;
        case "save_meter":
          saves.set(e.terminalId, e); // only the last checkpoint of a batch matters
          break;
        case "drop_meter":
          saves.delete(e.terminalId);
          first.push(buckets.meters.delete(e.terminalId));
          break;
        case "progress": {
          const { kind: _k, ...p } = e;
          o.nc.publish(s.sessionUpdates(e.sessionId), JSON.stringify({ type: "progress", ...p }));
          break;
        }
      }
    }
    // The control service bills from meter messages, not from this private checkpoint: one when the
    // meter has crossed a tariff period boundary since the held state, one with the cutoff (its
    // last word). Stored with the cutoff, before the checkpoint that records them.
    for (const e of saves.values()) {
      const m = meterMessageOf(states.get(e.terminalId), e);
      if (m) first.push(publish(s.meter(m.sessionId), JSON.stringify(m), `meter:${m.sessionId}:${m.at}:${e.meter.lastTs}`));
    }
    // The checkpoint records the cutoff as asked: it is stored only once the cutoff is, or a
    // restart would restore a session as cut whose cutoff never reached the stream.
    await Promise.all(first);
    await Promise.all([...saves.values()].map((e) => buckets.meters.put(e.terminalId, encodeMeterRecord({ ...e, owner: durable }))));
  };

  // Arms: what is armed now, then every change. Re-applying an arm of the same session is a no-op.
  const armEvent = (key: string, op: string, value: Uint8Array): CutoffEvent | null => {
    if (op !== "PUT" || value.length === 0) return { kind: "disarm" };
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(value));
    } catch {
      json = undefined;
    }
    const parsed = armSchema.safeParse(json);
    if (!parsed.success) {
      log.error({ key, issues: parsed.error.issues }, "ignoring an invalid arm record");
      return null;
    }
    return { kind: "arm", arm: parsed.data };
  };
  const jsm = await jetstreamManager(o.nc);
  /** A terminal's newest single reading in the stream, as a step event, if it is one a processor may trust. */
  const newestReading = async (terminalId: string): Promise<CutoffEvent | null> => {
    // The registered gateway, not the arm's word: only its readings count.
    const gatewayId = ctx.directory.get(terminalId)?.gatewayId;
    if (!gatewayId) return null;
    const m = await jsm.streams.getMessage(s.streams.telemetry, { last_by_subj: s.tel(gatewayId, terminalId) }).catch(() => null);
    if (!m) return null;
    // The newest message may be anything a gateway sent (the writer dead-letters it; here it counts for nothing).
    let json: unknown;
    try {
      json = m.json();
    } catch {
      return null;
    }
    const r = readingSchema.safeParse(json);
    if (!r.success || !ctx.trusts(gatewayId, terminalId, r.data.ts, m.time.getTime())) return null;
    return { kind: "reading", reading: r.data, seenAt: m.time.getTime() };
  };

  /**
   * Arm changes waiting for their unit, in the order the watch delivered them. They are stepped
   * together, as one unit (like a batch of readings): at 50 sessions starting and 50 ending a
   * second, one unit per change was 100 serial round trips to JetStream a second between the
   * batches of readings, and the cutoffs waited behind them (docs/scaling.md).
   */
  const waitingChanges: { key: string; ev: CutoffEvent }[] = [];
  /** At most this many changes in one unit; a watch further ahead waits for the units (bounded memory). */
  const maxChanges = 2000;
  let armsDrained: Promise<void> | null = null;
  let stopping = false;

  /** One unit over the waiting changes (up to `maxChanges`), in order; kept only once its effects are stored. */
  const armUnit = (taken: { key: string; ev: CutoffEvent }[]) =>
    serial(async () => {
      const u = begin();
      const effects: CutoffEffect[] = [];
      // Terminals whose session was armed afresh in this unit (and is still armed at its end).
      const fresh = new Set<string>();
      for (const { key, ev } of taken) {
        if (ev.kind === "arm" && u.state(key)?.meter?.sessionId !== ev.arm.sessionId) fresh.add(key);
        else if (ev.kind === "disarm") fresh.delete(key);
        effects.push(...u.apply(key, ev, o.clock()));
      }
      // The arm can come after the reading that already reached the target (the control service
      // was busy): look at each fresh terminal's newest single reading at once rather than wait a
      // second. The look-ups go side by side: one round trip for the unit, not one per arm.
      const newest = await Promise.all([...fresh].map(async (id) => [id, await newestReading(id)] as const));
      for (const [id, ev] of newest) if (ev) effects.push(...u.apply(id, ev, o.clock()));
      await run(effects);
      u.commit();
    });

  // An arm change is not redelivered: a unit that failed is retried here until its effects are
  // done (the changes after it wait, so they still apply in order).
  const drainArms = async () => {
    for (let tries = 1; waitingChanges.length > 0 && !stopping; ) {
      const taken = waitingChanges.slice(0, maxChanges);
      try {
        await armUnit(taken);
        waitingChanges.splice(0, taken.length);
        tries = 1;
      } catch (err) {
        if (tries === 1 || tries % 30 === 0) log.error({ err, changes: taken.length, tries }, "arm changes failed; retrying");
        tries++;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };
  const kickArms = (): Promise<void> =>
    (armsDrained ??= drainArms().finally(() => {
      armsDrained = null;
      // Changes that came while the last unit's effects were being stored.
      if (waitingChanges.length > 0 && !stopping) void kickArms();
    }));

  // Arms: what is armed now, then every change. Re-applying an arm of the same session is a no-op.
  const watch = await followBucket(buckets.arms, {
    log,
    what: "arms",
    onEntry: async (e) => {
      // Another partition's terminal is its owner's to cut (a state held here still takes its disarm).
      if (!ctx.owns(e.key) && !states.has(e.key)) return;
      const ev = armEvent(e.key, e.operation, e.value);
      if (!ev) return;
      waitingChanges.push({ key: e.key, ev });
      const drained = kickArms();
      // Bounded: a watch far ahead of the units waits for them to catch up.
      if (waitingChanges.length >= maxChanges) await drained;
    },
  });

  const handle = (items: TelemetryItem[]) =>
    serial(async () => {
      const end = batchSeconds.startTimer();
      const u = begin();
      const effects: CutoffEffect[] = [];
      // Each cutoff's delay from its reading's storage, observed once its effects are done (a
      // failed batch is decided again).
      const delays: number[] = [];
      for (const it of items) {
        try {
          effects.push(...u.own(it.terminalId, o.clock()));
          // Most terminals have no session: nothing to step (a session's arm sets its own "seen").
          if (u.state(it.terminalId)) {
            const fx = u.apply(it.terminalId, { kind: "reading", reading: it.reading, seenAt: it.storedAt }, o.clock());
            for (const e of fx) if (e.kind === "cutoff") delays.push(Math.max(0, e.cutoff.decidedAt - it.storedAt) / 1000);
            effects.push(...fx);
          }
        } catch (err) {
          // The step is pure: a reading it cannot take changed nothing, and the others go on.
          ctx.skipped("cutoff", it, `step failed: ${(err as Error).message}`, err);
        }
      }
      await run(effects);
      u.commit();
      for (const d of delays) decisionSeconds.observe(d);
      end();
    });

  // Each second, only the sessions whose silence deadline has come are ticked (a heap, not a sweep
  // over every terminal). A tick whose effects fail changes nothing, and its terminals are due
  // again at once; one that is not caught up decides nothing, and its deadline stays in the past.
  const timer = setInterval(() => {
    void serial(async () => {
      const at = o.clock();
      const due = deadlines.takeDue(at);
      if (due.length === 0) return;
      const u = begin();
      const effects: CutoffEffect[] = [];
      try {
        for (const terminalId of due) {
          if (u.state(terminalId)?.arm) effects.push(...u.apply(terminalId, { kind: "tick", caughtUp: ctx.pending() === 0 }, at));
        }
        await run(effects);
        u.commit();
      } finally {
        // What the commit did not reschedule (nothing changed, or the unit failed) keeps its deadline.
        for (const terminalId of due) {
          const st = states.get(terminalId);
          if (deadlines.get(terminalId) === undefined && st) deadlines.set(terminalId, dueAt(st, stepOpts));
        }
      }
    }).catch((err) => log.error({ err }, "cutoff tick failed"));
  }, o.tickMs ?? 1000);

  return {
    name: "cutoff",
    // Readings of terminals with no session need no parsing at all: most of the fleet, most of
    // the time (a terminal not yet owned is read once, to own it).
    want: (id) => states.has(id) || held.waitingArms.has(id) || !owned.has(id),
    handle,
    async stop() {
      clearInterval(timer);
      stopping = true;
      watch.stop();
      await watch.done;
      await armsDrained;
      await serial(async () => {});
    },
  };
}

/**
 * The meter message a checkpoint calls for, if any (the contract's `ctl.meter.<sessionId>`): the
 * meter crossed a tariff period boundary since the held state (a boundary at the new reading
 * counts), or the save carries a new cutoff. Between two such messages the meter stays in one
 * period, so the newest message advanced in a straight line to any later register is what the
 * checkpoint would say (docs/sessions-and-money.md, "Billing from the meter message").
 */
export function meterMessageOf(prev: TerminalState | undefined, save: CutoffEffect & { kind: "save_meter" }): MeterMessage | null {
  const old = prev?.meter;
  if (!prev?.tariff || !old || old.sessionId !== save.meter.sessionId) return null; // a new session's start point: control has it
  const base = { sessionId: save.meter.sessionId, terminalId: save.terminalId, meter: meterToJson(save.meter) };
  if (save.cutoff && !prev.cutoff) return { ...base, at: "cutoff" };
  if (save.meter.lastTs > old.lastTs && segments(prev.tariff, old.lastTs, save.meter.lastTs + 1).length > 1) return { ...base, at: "period" };
  return null;
}
