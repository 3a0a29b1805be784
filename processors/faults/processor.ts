import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import { z } from "zod";
import { armSchema, terminalInfoSchema, type Cutoff, type FaultChange, type Subjects } from "../../contracts/index.ts";
import type { Buckets, TelemetryItem } from "../../ingest/index.ts";
import { startProcessorHost, type RunningProcessor, type Stage, type StageContext } from "../host.ts";
import { liveWriter } from "../live.ts";
import { serialQueue } from "../serial.ts";
import type { FaultKind, FaultProfile } from "./rules.ts";
import { emptyFaultState, faultStep, type FaultEffect, type FaultState } from "./step.ts";

export const defaultFaultProfile: FaultProfile = { onCurrentA: [16, 18], offCurrentMaxA: 0.1, voltageV: [198, 242], faultDebounceS: 2, faultClearS: 10 };

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
    ...(o.filterSubject ? { filterSubject: o.filterSubject } : {}),
    stages: [(ctx) => faultStage(o, ctx)],
  });
}

/**
 * The NATS side of the fault step: every reading of every terminal goes through the rules
 * with that terminal's thresholds; changes go to the control service (which stores and routes
 * them to the franchisee), over-current in a session goes out as a cutoff at once. Which faults
 * are open is checkpointed per terminal, so a restart resolves what it opened before. It also
 * keeps the live bucket (last reading per terminal), since it reads every reading anyway.
 */
export async function faultStage(o: FaultStageOptions, ctx: StageContext): Promise<Stage> {
  const { subjects: s, buckets, log } = o;
  const js = jetstream(o.nc);
  const serial = serialQueue();
  const states = new Map<string, FaultState>();
  const profiles = new Map<string, FaultProfile>();
  const sessions = new Map<string, string>();
  const live = liveWriter(buckets.live);
  const changes = new Counter({ name: "vend_fault_changes_total", help: "Fault changes decided", labelNames: ["kind", "change"], registers: [o.registry] });
  const decisionSeconds = new Histogram({
    name: "vend_fault_decision_seconds",
    help: "From JetStream storing the reading that decided a fault change or safety stop to the decision",
    labelNames: ["change"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [o.registry],
  });

  const now0 = o.clock();
  for await (const key of await buckets.faultState.keys()) {
    const e = await buckets.faultState.get(key);
    if (!e || e.operation !== "PUT" || e.length === 0) continue;
    const c = checkpointSchema.safeParse(e.json());
    if (!c.success) continue;
    const st = emptyFaultState(now0);
    for (const k of c.data.open) st.tracks[k as FaultKind] = { since: null, clearSince: null, open: true, holding: true };
    states.set(key, st);
  }

  // Registrations and sessions, first as they are, then every change.
  const follow = async (kv: Buckets["terminals"], on: (key: string, value: unknown | null) => void) => {
    const w = await kv.watch();
    void (async () => {
      for await (const e of w) {
        try {
          on(e.key, e.operation === "PUT" && e.length ? e.json() : null);
        } catch (err) {
          log.warn({ err, key: e.key }, "ignoring an unreadable entry");
        }
      }
    })();
    return w;
  };
  const watches = [
    await follow(buckets.terminals, (k, v) => {
      const t = v === null ? null : terminalInfoSchema.safeParse(v);
      if (t?.success) profiles.set(k, t.data.profile);
      else profiles.delete(k);
    }),
    await follow(buckets.arms, (k, v) => {
      const a = v === null ? null : armSchema.safeParse(v);
      if (a?.success) sessions.set(k, a.data.sessionId);
      else sessions.delete(k);
    }),
  ];

  const checkpoint = (terminalId: string, st: FaultState) => {
    const open = Object.entries(st.tracks)
      .filter(([, t]) => t?.open)
      .map(([k]) => k);
    return open.length ? buckets.faultState.put(terminalId, JSON.stringify({ open })) : buckets.faultState.delete(terminalId);
  };

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
    if (transitions) work.push(checkpoint(terminalId, st));
    await Promise.all(work);
  };

  const handle = (items: TelemetryItem[]) =>
    serial(async () => {
      const at = o.clock();
      const work: Promise<void>[] = [];
      for (const it of items) {
        const st = states.get(it.terminalId) ?? emptyFaultState(at);
        const res = faultStep(
          st,
          { kind: "reading", reading: it.reading, seenAt: it.storedAt, session: sessions.get(it.terminalId) ?? null },
          at,
          profiles.get(it.terminalId) ?? defaultFaultProfile,
          o.offlineMs,
        );
        states.set(it.terminalId, res.state);
        if (res.effects.length) {
          const late = Math.max(0, o.clock() - it.storedAt) / 1000;
          for (const e of res.effects) if (e.kind !== "repeat") decisionSeconds.observe({ change: e.kind }, late);
          work.push(run(it.terminalId, res.effects, res.state));
        }
        // Live state is a best-effort view, rewritten every few seconds: the batch does not
        // wait for it (a fault decision behind it would).
        live.note(it.gatewayId, it.terminalId, it.reading, it.storedAt)?.catch((err) => log.warn({ err }, "live state not written"));
      }
      await Promise.all(work);
    });

  const timer = setInterval(() => {
    void serial(async () => {
      const at = o.clock();
      const work: Promise<void>[] = [];
      for (const [terminalId, st] of states) {
        const res = faultStep(st, { kind: "tick", caughtUp: ctx.pending() === 0 }, at, profiles.get(terminalId) ?? defaultFaultProfile, o.offlineMs);
        states.set(terminalId, res.state);
        if (res.effects.length) work.push(run(terminalId, res.effects, res.state));
      }
      await Promise.all(work);
    }).catch((err) => log.error({ err }, "fault tick failed"));
  }, o.tickMs ?? 1000);

  return {
    handle,
    async stop() {
      clearInterval(timer);
      for (const w of watches) w.stop();
      await serial(async () => {});
    },
  };
}
