import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import { armSchema, readingSchema, type Subjects } from "../../contracts/index.ts";
import type { Buckets, TelemetryItem } from "../../ingest/index.ts";
import { startProcessorHost, type RunningProcessor, type Stage, type StageContext } from "../host.ts";
import { serialQueue } from "../serial.ts";
import { emptyState, step, type CutoffEffect, type CutoffEvent, type TerminalState } from "./step.ts";
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
  const cutoffs = new Counter({ name: "vend_cutoffs_total", help: "Cutoffs decided", labelNames: ["reason"], registers: [o.registry] });
  const batchSeconds = new Histogram({
    name: "vend_cutoff_batch_seconds",
    help: "Time to process one batch of telemetry in the cutoff processor",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [o.registry],
  });
  const decisionSeconds = new Histogram({
    name: "vend_cutoff_decision_seconds",
    help: "From JetStream storing the reading that reached a cutoff to the processor deciding it",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [o.registry],
  });

  const durable = ctx.owner;
  // Partitioned (a filter set): act only on terminals this instance owns, restored or read from.
  const partitioned = ctx.partitioned;
  const owned = new Set<string>();
  const owns = (terminalId: string) => !partitioned || owned.has(terminalId);

  const now = o.clock();
  for (const [terminalId, r] of await loadAllMeters(buckets.meters)) {
    if (partitioned && r.owner !== durable) continue;
    owned.add(terminalId);
    states.set(terminalId, { ...emptyState(now), meter: r.meter, cutoff: r.cutoff });
  }

  // Arms of terminals not (yet) owned wait here until their first reading makes them ours.
  const waitingArms = new Map<string, CutoffEvent & { kind: "arm" }>();

  const apply = (terminalId: string, e: CutoffEvent, at: number): CutoffEffect[] => {
    if (!owns(terminalId)) {
      if (e.kind === "arm") waitingArms.set(terminalId, e);
      if (e.kind === "disarm") waitingArms.delete(terminalId);
      return [];
    }
    const res = step(terminalId, states.get(terminalId) ?? emptyState(at), e, at, stepOpts);
    if (res.state.arm || res.state.meter) states.set(terminalId, res.state);
    else states.delete(terminalId);
    return res.effects;
  };

  const run = async (effects: CutoffEffect[]): Promise<void> => {
    const saves = new Map<string, CutoffEffect & { kind: "save_meter" }>();
    const work: Promise<unknown>[] = [];
    for (const e of effects) {
      switch (e.kind) {
        case "cutoff":
          cutoffs.inc({ reason: e.cutoff.reason });
          work.push(js.publish(s.cutoff(e.cutoff.terminalId), JSON.stringify(e.cutoff), { msgID: `cutoff:${e.cutoff.sessionId}` }));
          break;
        case "save_meter":
          saves.set(e.terminalId, e); // only the last checkpoint of a batch matters
          break;
        case "drop_meter":
          saves.delete(e.terminalId);
          work.push(buckets.meters.delete(e.terminalId));
          break;
        case "progress": {
          const { kind: _k, ...p } = e;
          o.nc.publish(s.sessionUpdates(e.sessionId), JSON.stringify({ type: "progress", ...p }));
          break;
        }
      }
    }
    for (const e of saves.values()) work.push(buckets.meters.put(e.terminalId, encodeMeterRecord({ ...e, owner: durable })));
    await Promise.all(work);
  };

  // Arms: what is armed now, then every change. Re-applying an arm of the same session is a no-op.
  const armEvent = (key: string, op: string, value: Uint8Array): CutoffEvent | null => {
    if (op !== "PUT" || value.length === 0) return { kind: "disarm" };
    const parsed = armSchema.safeParse(JSON.parse(new TextDecoder().decode(value)));
    if (!parsed.success) {
      log.error({ key, issues: parsed.error.issues }, "ignoring an invalid arm record");
      return null;
    }
    return { kind: "arm", arm: parsed.data };
  };
  const jsm = await jetstreamManager(o.nc);
  const newestReading = async (terminalId: string, gatewayId: string): Promise<CutoffEffect[]> => {
    const m = await jsm.streams.getMessage(s.streams.telemetry, { last_by_subj: s.tel(gatewayId, terminalId) }).catch(() => null);
    if (!m) return [];
    const r = readingSchema.safeParse(m.json());
    if (!r.success) return [];
    return apply(terminalId, { kind: "reading", reading: r.data, seenAt: m.time.getTime() }, o.clock());
  };

  const watch = await buckets.arms.watch();
  const watching = (async () => {
    for await (const e of watch) {
      const ev = armEvent(e.key, e.operation, e.value);
      if (!ev) continue;
      await serial(async () => {
        const fresh = ev.kind === "arm" && states.get(e.key)?.meter?.sessionId !== ev.arm.sessionId;
        const effects = apply(e.key, ev, o.clock());
        // The arm can come after the reading that already reached the target (the control service
        // was busy): look at the terminal's newest single reading at once rather than wait a second.
        if (fresh && ev.kind === "arm" && ev.arm.gatewayId) effects.push(...(await newestReading(e.key, ev.arm.gatewayId)));
        await run(effects);
      }).catch((err) => log.error({ err, key: e.key }, "arm change failed"));
    }
  })();

  const handle = (items: TelemetryItem[]) =>
    serial(async () => {
      const end = batchSeconds.startTimer();
      const effects: CutoffEffect[] = [];
      for (const it of items) {
        if (!owned.has(it.terminalId)) {
          owned.add(it.terminalId);
          const arm = waitingArms.get(it.terminalId);
          waitingArms.delete(it.terminalId);
          if (arm) effects.push(...apply(it.terminalId, arm, o.clock()));
        }
        // Most terminals have no session: nothing to step (a session's arm sets its own "seen").
        if (states.has(it.terminalId)) {
          const fx = apply(it.terminalId, { kind: "reading", reading: it.reading, seenAt: it.storedAt }, o.clock());
          for (const e of fx) if (e.kind === "cutoff") decisionSeconds.observe(Math.max(0, e.cutoff.decidedAt - it.storedAt) / 1000);
          effects.push(...fx);
        }
      }
      await run(effects);
      end();
    });

  const timer = setInterval(() => {
    void serial(async () => {
      const at = o.clock();
      const effects: CutoffEffect[] = [];
      for (const [terminalId, st] of states) {
        if (st.arm) effects.push(...apply(terminalId, { kind: "tick", caughtUp: ctx.pending() === 0 }, at));
      }
      await run(effects);
    }).catch((err) => log.error({ err }, "cutoff tick failed"));
  }, o.tickMs ?? 1000);

  return {
    // Readings of terminals with no session need no parsing at all: most of the fleet, most of
    // the time (a terminal not yet owned is read once, to own it).
    want: (id) => states.has(id) || waitingArms.has(id) || !owned.has(id),
    handle,
    async stop() {
      clearInterval(timer);
      watch.stop();
      await watching.catch(() => {});
      await serial(async () => {});
    },
  };
}
