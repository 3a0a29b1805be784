import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { shared } from "../metrics.ts";
import { Counter, Histogram, type Registry } from "prom-client";
import { armSchema, meterToJson, readingSchema, segments, type MeterMessage, type Subjects } from "../../contracts/index.ts";
import type { Buckets, TelemetryItem } from "../../ingest/index.ts";
import { startProcessorHost, type RunningProcessor, type Stage, type StageContext } from "../host.ts";
import { followBucket } from "../follow.ts";
import { startTerminalStages } from "../stage.ts";
import type { Unit } from "../unit.ts";
import { cutoffLogic, takesArms, wants, type CutoffConfig, type CutoffEffect, type CutoffInput, type TerminalState } from "./step.ts";
import { encodeMeterRecord, loadAllMeters } from "./store.ts";
import { checkpointWriter } from "./checkpoints.ts";

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
 * The NATS side of the cutoff step: reads the checkpoints, follows the arms, looks up a fresh
 * arm's newest reading, and runs the effects. The states, their units of work and the silence
 * tick are the host's (processors/stage.ts); which input may touch which terminal is the step's.
 */
export async function cutoffStage(o: CutoffStageOptions, ctx: StageContext): Promise<Stage> {
  const { subjects: s, buckets, log } = o;
  const js = jetstream(o.nc);
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
  const config = (terminalId: string): CutoffConfig => ({ terminal: ctx.terminal(terminalId), silenceMs: o.silenceMs, partitioned: ctx.partitioned, owner: durable });

  // The message id makes a repeat (a retried unit, a restart) one cutoff in the stream.
  const publish = (subject: string, data: string, msgID: string) => js.publish(subject, data, { msgID });
  const checkpoints = checkpointWriter(buckets.meters, log);
  const run = async (u: Unit<TerminalState, CutoffInput, CutoffEffect>): Promise<void> => {
    const saves = new Map<string, CutoffEffect & { kind: "save_meter" }>();
    const first: Promise<unknown>[] = [];
    for (const { effect: e } of u.effects) {
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
          checkpoints.delete(e.terminalId);
          break;
        case "progress": {
          const { kind: _k, ...p } = e;
          o.nc.publish(s.sessionUpdates(e.sessionId), JSON.stringify({ type: "progress", ...p }));
          break;
        }
        case "read_newest":
          break; // done by the unit that stepped the arm (armUnit), before its effects
      }
    }
    // The control service bills from meter messages, not from this private checkpoint: one when the
    // meter has crossed a tariff period boundary since the held state, one with the cutoff (its
    // last word). Stored with the cutoff, before the checkpoint that records them.
    for (const e of saves.values()) {
      const m = meterMessageOf(u.held(e.terminalId), e);
      if (m) first.push(publish(s.meter(m.sessionId), JSON.stringify(m), `meter:${m.sessionId}:${m.at}:${e.meter.lastTs}`));
    }
    // The checkpoint records the cutoff as asked: it is given to the writer only once the cutoff
    // is stored, or a restart would restore a session as cut whose cutoff never reached the
    // stream. The unit's states are kept then; the readings are acknowledged once the writer has
    // stored the checkpoints (handle's AckLater), so the next batch need not wait for them.
    await Promise.all(first);
    for (const e of saves.values()) checkpoints.put(e.terminalId, encodeMeterRecord({ ...e, owner: durable }));
  };

  const restored = await loadAllMeters(buckets.meters);
  // Every batch, set of waiting arm changes and tick is a unit: its changes are kept only after its effects are stored.
  const stages = startTerminalStages({ name: "cutoff", logic: cutoffLogic, config, run, clock: o.clock, caughtUp: () => ctx.pending() === 0, log, ...(o.tickMs !== undefined ? { tickMs: o.tickMs } : {}) });
  try {
    // The step restores what is this instance's (its partition's; in the static split, its durable's).
    await stages.unit((u) => {
      const now = o.clock();
      for (const [terminalId, record] of restored) u.apply(terminalId, { kind: "restore", record }, now);
    });
  } catch (e) {
    await stages.stop();
    await checkpoints.stop();
    throw e;
  }

  // Arms: what is armed now, then every change. Re-applying an arm of the same session is a no-op.
  const armInput = (key: string, op: string, value: Uint8Array): CutoffInput | null => {
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
  /** A terminal's newest single reading in the stream, as a step input (the step decides whether it counts). */
  const newestReading = async (terminalId: string): Promise<CutoffInput | null> => {
    // The registered gateway's subject, not the arm's word: only its readings count.
    const gatewayId = ctx.terminal(terminalId).info?.gatewayId;
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
    if (!r.success) return null;
    return { kind: "reading", reading: r.data, gatewayId, seenAt: m.time.getTime() };
  };

  /**
   * Arm changes waiting for their unit, in the order the watch delivered them. They are stepped
   * together, as one unit (like a batch of readings): at 50 sessions starting and 50 ending a
   * second, one unit per change was 100 serial round trips to JetStream a second between the
   * batches of readings, and the cutoffs waited behind them (docs/scaling.md).
   */
  const waitingChanges: { key: string; input: CutoffInput }[] = [];
  /** At most this many changes in one unit; a watch further ahead waits for the units (bounded memory). */
  const maxChanges = 2000;
  let armsDrained: Promise<void> | null = null;
  let stopping = false;

  /** One unit over the waiting changes (up to `maxChanges`), in order; kept only once its effects are stored. */
  const armUnit = (taken: { key: string; input: CutoffInput }[]) =>
    stages.unit(async (u) => {
      // Terminals whose session the step armed afresh in this unit.
      const fresh = new Set<string>();
      for (const { key, input } of taken) for (const e of u.apply(key, input, o.clock())) if (e.kind === "read_newest") fresh.add(key);
      // The arm can come after the reading that already reached the target (the control service
      // was busy): look at each fresh terminal's newest single reading at once rather than wait a
      // second. The look-ups go side by side: one round trip for the unit, not one per arm.
      const newest = await Promise.all([...fresh].map(async (id) => [id, await newestReading(id)] as const));
      for (const [id, input] of newest) if (input) u.apply(id, input, o.clock());
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
      // The step's own rule, asked before parsing: another partition's arms cost nothing here.
      if (!takesArms(stages.states.get(e.key), config(e.key))) return;
      const input = armInput(e.key, e.operation, e.value);
      if (!input) return;
      waitingChanges.push({ key: e.key, input });
      const drained = kickArms();
      // Bounded: a watch far ahead of the units waits for them to catch up.
      if (waitingChanges.length >= maxChanges) await drained;
    },
  });

  const handle = async (items: TelemetryItem[]) => {
    // Each cutoff's delay from its reading's storage, observed once its effects are done (a
    // failed batch is decided again).
    const delays: number[] = [];
    const end = await stages.unit((u) => {
      const end = batchSeconds.startTimer();
      for (const it of items) {
        try {
          // Most terminals have no session: nothing to step (a session's arm sets its own "seen").
          if (!wants(u.state(it.terminalId), ctx)) continue;
          const fx = u.apply(it.terminalId, { kind: "reading", reading: it.reading, gatewayId: it.gatewayId, seenAt: it.storedAt }, o.clock());
          for (const e of fx) if (e.kind === "cutoff") delays.push(Math.max(0, e.cutoff.decidedAt - it.storedAt) / 1000);
        } catch (err) {
          // The step is pure: a reading it cannot take changed nothing, and the others go on.
          ctx.skipped("cutoff", it, `step failed: ${(err as Error).message}`, err);
        }
      }
      return end;
    });
    for (const d of delays) decisionSeconds.observe(d);
    end();
    return { ackAfter: checkpoints.stored() };
  };

  return {
    name: "cutoff",
    // Readings of terminals with no session need no parsing at all: most of the fleet, most of
    // the time (in the static split, a terminal not yet owned is read once, to own it).
    want: (id) => wants(stages.states.get(id), ctx),
    handle,
    async stop() {
      stopping = true;
      watch.stop();
      await watch.done;
      await armsDrained;
      await stages.stop();
      await checkpoints.stop();
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
