import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { shared } from "../metrics.ts";
import { Counter, Histogram, type Registry } from "prom-client";
import { z } from "zod";
import { armSchema, DEFAULT_TERMINAL_PROFILE, type Cutoff, type FaultChange, type Subjects } from "../../contracts/index.ts";
import type { Buckets, TelemetryItem } from "../../ingest/index.ts";
import { startProcessorHost, type RunningProcessor, type Stage, type StageContext } from "../host.ts";
import { kvFirstOf } from "../../ingest/index.ts";
import { followBucket } from "../follow.ts";
import { answerLiveQueries, liveWriter } from "../live.ts";
import { startTerminalStages } from "../stage.ts";
import { answersLive } from "../terminal.ts";
import type { Unit } from "../unit.ts";
import { restorableKinds, type FaultProfile } from "./rules.ts";
import { faultLogic, type FaultConfig, type FaultEffect, type FaultInput, type FaultState } from "./step.ts";

export const defaultFaultProfile: FaultProfile = {
  onCurrentA: [...DEFAULT_TERMINAL_PROFILE.onCurrentA],
  offCurrentMaxA: DEFAULT_TERMINAL_PROFILE.offCurrentMaxA,
  voltageV: [...DEFAULT_TERMINAL_PROFILE.voltageV],
  faultDebounceS: DEFAULT_TERMINAL_PROFILE.faultDebounceS,
  faultClearS: DEFAULT_TERMINAL_PROFILE.faultClearS,
};

const checkpointSchema = z.object({ open: z.array(z.string().max(64)).max(32) });


export interface FaultStageOptions {
  nc: NatsConnection;
  subjects: Subjects;
  buckets: Buckets;
  log: Logger;
  registry: Registry;
  clock: () => number;
  /** No telemetry for this long opens terminal_offline. */
  offlineMs: number;
  tickMs?: number;
}

export interface FaultProcessorOptions extends FaultStageOptions {
  /** @default durable `<prefix>_faults`, no filter */
  durable?: string;
  filterSubject?: string;
}

/** The fault stage on a consumer of its own (a partition, or a deployment without cutoff). */
export function startFaultProcessor(o: FaultProcessorOptions): Promise<RunningProcessor> {
  return startProcessorHost({
    nc: o.nc,
    subjects: o.subjects,
    log: o.log,
    clock: o.clock,
    durable: o.durable ?? o.subjects.consumer("faults"),
    terminals: o.buckets.terminals,
    registry: o.registry,
    ...(o.filterSubject ? { filterSubject: o.filterSubject } : {}),
    stages: [(ctx) => faultStage(o, ctx)],
  });
}

/**
 * The NATS side of the fault step: every reading of every terminal goes through the rules
 * with that terminal's thresholds; changes go to the control service (which stores and routes
 * them to the franchisee), over-current in a session goes out as a cutoff at once. Which faults
 * are open is checkpointed per terminal, so a restart resolves what it opened before. It also
 * keeps the live state (last reading per terminal, in memory, the bucket written on change), since
 * it reads every reading anyway.
 */
export async function faultStage(o: FaultStageOptions, ctx: StageContext): Promise<Stage> {
  const { subjects: s, buckets, log } = o;
  const js = jetstream(o.nc);
  const sessions = new Map<string, string>();
  const live = liveWriter(buckets.live, o.offlineMs);
  // The control service asks here for what the bucket holds only as of the last change.
  // Only the owner of a terminal's partition answers, so one answer arrives.
  const queries = answerLiveQueries(o.nc, s, live, (id) => answersLive(ctx.terminal(id), ctx.partitioned, live.get(id) !== undefined), log);
  const changes = shared(o.registry, "vend_fault_changes_total", () => new Counter({ name: "vend_fault_changes_total", help: "Fault changes decided", labelNames: ["kind", "change"], registers: [o.registry] }));
  const config = (terminalId: string): FaultConfig => {
    const terminal = ctx.terminal(terminalId);
    return { terminal, profile: terminal.info?.profile ?? defaultFaultProfile, offlineMs: o.offlineMs };
  };
  const decisionSeconds = shared(o.registry, "vend_fault_decision_seconds", () => new Histogram({
    name: "vend_fault_decision_seconds",
    help: "From JetStream storing the reading that decided a fault change or safety stop to the decision",
    labelNames: ["change"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [o.registry],
  }));

  const checkpoint = (terminalId: string, st: FaultState) => {
    const open = Object.entries(st.tracks)
      .filter(([, t]) => t?.open)
      .map(([k]) => k);
    return open.length ? buckets.faultState.put(terminalId, JSON.stringify({ open })) : buckets.faultState.delete(terminalId);
  };

  /** A terminal's effects of one unit of work, then (once they are stored) its checkpoint of open faults. */
  const runTerminal = async (terminalId: string, effects: FaultEffect[], st: FaultState): Promise<void> => {
    const work: Promise<unknown>[] = [];
    let transitions = false;
    for (const e of effects) {
      if (e.kind === "safety_stop") {
        const c: Cutoff = { sessionId: e.sessionId, terminalId, reason: "fault", ts: e.at, decidedAt: o.clock() };
        work.push(js.publish(s.cutoff(terminalId), JSON.stringify(c), { msgID: `cutoff-fault:${e.sessionId}` }));
        continue;
      }
      transitions ||= e.kind !== "repeat";
      changes.inc({ kind: e.fault, change: e.kind });
      const change: FaultChange = { terminalId, kind: e.fault, change: e.kind, at: e.at, ...(e.kind === "resolve" ? {} : { evidence: e.evidence }), decidedAt: o.clock() };
      work.push(js.publish(s.faultChange(terminalId), JSON.stringify(change), { msgID: `fault:${terminalId}:${e.fault}:${e.kind}:${e.at}` }));
    }
    await Promise.all(work);
    if (transitions) await checkpoint(terminalId, st);
  };
  /**
   * A unit's effects, terminal by terminal side by side. The unit's states are kept only once every
   * effect is stored: a unit that failed is retried from where it started, and decides the same
   * changes again (their message ids make the repeats harmless).
   */
  const run = async (u: Unit<FaultState, FaultInput, FaultEffect>): Promise<void> => {
    const byTerminal = new Map<string, FaultEffect[]>();
    for (const { terminalId, effect } of u.effects) {
      const fx = byTerminal.get(terminalId);
      if (fx) fx.push(effect);
      else byTerminal.set(terminalId, [effect]);
    }
    await Promise.all([...byTerminal].map(([terminalId, effects]) => runTerminal(terminalId, effects, u.state(terminalId)!)));
  };

  // The open faults checkpointed per terminal; the step restores its partition's.
  const keys: string[] = [];
  // The listing's consumer may be placed on a server that just died (ingest/first-of.ts).
  const fkeys = await kvFirstOf(() => buckets.faultState.keys());
  for await (const key of fkeys) keys.push(key);
  const checkpoints = await Promise.all(
    keys.map(async (key) => {
      const e = await buckets.faultState.get(key);
      if (!e || e.operation !== "PUT" || e.length === 0) return null;
      const c = checkpointSchema.safeParse(e.json());
      if (!c.success) return null;
      const { kinds, unknown } = restorableKinds(c.data.open);
      if (unknown.length) log.warn({ terminalId: key, unknown }, "fault checkpoint names kinds this release does not know; dropped");
      return [key, kinds] as const;
    }),
  );
  // Offline deadlines: each second only the terminals whose deadline has come are ticked.
  const stages = startTerminalStages({ name: "fault", logic: faultLogic, config, run, clock: o.clock, caughtUp: () => ctx.pending() === 0, log, ...(o.tickMs !== undefined ? { tickMs: o.tickMs } : {}) });
  try {
    await stages.unit((u) => {
      const now = o.clock();
      for (const c of checkpoints) if (c) u.apply(c[0], { kind: "restore", open: c[1] }, now);
    });
  } catch (e) {
    queries.unsubscribe();
    await stages.stop();
    throw e;
  }

  // Sessions, first as they are, then every change (thresholds come from the host's directory).
  const watch = await followBucket(buckets.arms, {
    log,
    what: "arms",
    onEntry: (e) => {
      try {
        const a = e.operation === "PUT" && e.length ? armSchema.safeParse(e.json()) : null;
        if (a?.success) sessions.set(e.key, a.data.sessionId);
        else sessions.delete(e.key);
      } catch (err) {
        log.warn({ err, key: e.key }, "ignoring an unreadable entry");
      }
    },
  });

  const handle = async (items: TelemetryItem[]) => {
    // Each decision's delay from its reading's storage, observed once the unit's effects are stored.
    const delays: { change: string; s: number }[] = [];
    await stages.unit((u) => {
      const at = o.clock();
      for (const it of items) {
        try {
          const input: FaultInput = { kind: "reading", reading: it.reading, gatewayId: it.gatewayId, seenAt: it.storedAt, session: sessions.get(it.terminalId) ?? null };
          const fx = u.apply(it.terminalId, input, at);
          for (const e of fx) if (e.kind !== "repeat") delays.push({ change: e.kind, s: Math.max(0, o.clock() - it.storedAt) / 1000 });
        } catch (err) {
          // The step is pure: a reading it cannot take changed nothing, and the others go on.
          ctx.skipped("faults", it, `step failed: ${(err as Error).message}`, err);
          continue;
        }
        // Live state is a best-effort view, written on change: the batch does not wait for it
        // (a fault decision behind it would).
        live.note(it.gatewayId, it.terminalId, it.reading, it.storedAt)?.catch((err) => log.warn({ err }, "live state not written"));
      }
    });
    for (const d of delays) decisionSeconds.observe({ change: d.change }, d.s);
  };

  return {
    name: "faults",
    handle,
    async stop() {
      queries.unsubscribe();
      watch.stop();
      await watch.done;
      await stages.stop();
    },
  };
}
