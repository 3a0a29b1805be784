import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { shared } from "../metrics.ts";
import { Counter, Histogram, type Registry } from "prom-client";
import { z } from "zod";
import { armSchema, DEFAULT_TERMINAL_PROFILE, type Cutoff, type FaultChange, type Subjects } from "../../contracts/index.ts";
import type { Buckets, TelemetryItem } from "../../ingest/index.ts";
import { startProcessorHost, type RunningProcessor, type Stage, type StageContext } from "../host.ts";
import { followBucket } from "../follow.ts";
import { answerLiveQueries, liveWriter } from "../live.ts";
import { serialQueue } from "../serial.ts";
import type { FaultKind, FaultProfile } from "./rules.ts";
import { Deadlines } from "../deadlines.ts";
import { firstOf } from "../first-of.ts";
import { emptyFaultState, faultDueAt, faultStep, type FaultEffect, type FaultInput, type FaultState } from "./step.ts";

export const defaultFaultProfile: FaultProfile = {
  onCurrentA: [...DEFAULT_TERMINAL_PROFILE.onCurrentA],
  offCurrentMaxA: DEFAULT_TERMINAL_PROFILE.offCurrentMaxA,
  voltageV: [...DEFAULT_TERMINAL_PROFILE.voltageV],
  faultDebounceS: DEFAULT_TERMINAL_PROFILE.faultDebounceS,
  faultClearS: DEFAULT_TERMINAL_PROFILE.faultClearS,
};

const checkpointSchema = z.object({ open: z.array(z.string()) });

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
  const serial = serialQueue();
  const states = new Map<string, FaultState>();
  // Offline deadlines: each second only the terminals whose deadline has come are ticked.
  const deadlines = new Deadlines();
  const sessions = new Map<string, string>();
  const live = liveWriter(buckets.live, o.offlineMs);
  // The control service asks here for what the bucket holds only as of the last change.
  // Only the owner of a terminal's partition answers, so one answer arrives.
  const queries = answerLiveQueries(o.nc, s, live, (id) => ctx.owns(id) && (!ctx.partitioned || live.get(id) !== undefined), log);
  const changes = shared(o.registry, "vend_fault_changes_total", () => new Counter({ name: "vend_fault_changes_total", help: "Fault changes decided", labelNames: ["kind", "change"], registers: [o.registry] }));
  const profileOf = (terminalId: string) => ctx.directory.get(terminalId)?.profile ?? defaultFaultProfile;
  const decisionSeconds = shared(o.registry, "vend_fault_decision_seconds", () => new Histogram({
    name: "vend_fault_decision_seconds",
    help: "From JetStream storing the reading that decided a fault change or safety stop to the decision",
    labelNames: ["change"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [o.registry],
  }));

  const now0 = o.clock();
  // The listing's consumer may be placed on a server that just died (processors/first-of.ts).
  const fkeys = await firstOf(() => buckets.faultState.keys(), { patienceMs: 500, tries: 5, discard: (late) => late.stop() });
  for await (const key of fkeys) {
    // Partitions: the successor of a dead or departed owner restores its terminals' open faults.
    if (!ctx.owns(key)) continue;
    const e = await buckets.faultState.get(key);
    if (!e || e.operation !== "PUT" || e.length === 0) continue;
    const c = checkpointSchema.safeParse(e.json());
    if (!c.success) continue;
    const st = emptyFaultState(now0);
    for (const k of c.data.open) st.tracks[k as FaultKind] = { since: null, clearSince: null, open: true, holding: true };
    states.set(key, st);
    deadlines.set(key, faultDueAt(st, o.offlineMs));
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

  const checkpoint = (terminalId: string, st: FaultState) => {
    const open = Object.entries(st.tracks)
      .filter(([, t]) => t?.open)
      .map(([k]) => k);
    return open.length ? buckets.faultState.put(terminalId, JSON.stringify({ open })) : buckets.faultState.delete(terminalId);
  };

  /** A terminal's effects of one unit of work, then (once they are stored) its checkpoint of open faults. */
  const run = async (terminalId: string, effects: FaultEffect[], st: FaultState): Promise<void> => {
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
   * Steps a unit of work (a batch, a tick) on a copy of the states that is kept only once every
   * effect is stored: a unit that failed is retried from where it started, and decides the same
   * changes again (their message ids make the repeats harmless).
   */
  const unit = async (steps: (stepOne: (terminalId: string, input: FaultInput, at: number) => FaultEffect[]) => void): Promise<void> => {
    const changed = new Map<string, FaultState>();
    const effectsOf = new Map<string, FaultEffect[]>();
    steps((terminalId, input, at) => {
      const res = faultStep(changed.get(terminalId) ?? states.get(terminalId) ?? emptyFaultState(at), input, at, profileOf(terminalId), o.offlineMs);
      changed.set(terminalId, res.state);
      if (res.effects.length) effectsOf.set(terminalId, [...(effectsOf.get(terminalId) ?? []), ...res.effects]);
      return res.effects;
    });
    await Promise.all([...effectsOf].map(([terminalId, effects]) => run(terminalId, effects, changed.get(terminalId)!)));
    for (const [terminalId, st] of changed) {
      states.set(terminalId, st);
      deadlines.set(terminalId, faultDueAt(st, o.offlineMs));
    }
  };

  const handle = (items: TelemetryItem[]) =>
    serial(async () => {
      // Each decision's delay from its reading's storage, observed once the unit's effects are stored.
      const delays: { change: string; s: number }[] = [];
      await unit((stepOne) => {
        const at = o.clock();
        for (const it of items) {
          try {
            const fx = stepOne(it.terminalId, { kind: "reading", reading: it.reading, seenAt: it.storedAt, session: sessions.get(it.terminalId) ?? null }, at);
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
    });

  const timer = setInterval(() => {
    void serial(async () => {
      const at = o.clock();
      const due = deadlines.takeDue(at);
      if (due.length === 0) return;
      try {
        await unit((stepOne) => {
          for (const terminalId of due) {
            // A terminal taken out of the registry is nobody's to watch; one in maintenance or
            // retired is silent on purpose (its deadline stays, so a return to service is watched).
            const info = ctx.directory.get(terminalId);
            if (states.has(terminalId) && info && (info.status ?? "active") === "active") stepOne(terminalId, { kind: "tick", caughtUp: ctx.pending() === 0 }, at);
          }
        });
      } finally {
        // Not stepped (unregistered), or the unit failed: keep the deadline, so it is looked at again.
        for (const terminalId of due) {
          const st = states.get(terminalId);
          if (deadlines.get(terminalId) === undefined && st) deadlines.set(terminalId, faultDueAt(st, o.offlineMs));
        }
      }
    }).catch((err) => log.error({ err }, "fault tick failed"));
  }, o.tickMs ?? 1000);

  return {
    name: "faults",
    handle,
    async stop() {
      clearInterval(timer);
      queries.unsubscribe();
      watch.stop();
      await watch.done;
      await serial(async () => {});
    },
  };
}
