import { jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { shared } from "./metrics.ts";
import { Counter, Registry } from "prom-client";
import { subjectTokens, type Subjects } from "../contracts/index.ts";
import { isAckLater, runConsumer, unavailableDependency, validReadings, type AckLater, type RunningConsumer, type TelemetryItem } from "../ingest/index.ts";
import { followDirectory, type TerminalDirectory } from "./directory.ts";
import { partitionOf } from "./partitions.ts";
import { refusal, type TerminalView } from "./terminal.ts";

/** What a stage learns from the consumer that feeds it. */
export interface StageContext {
  /** The durable consumer's name: who owns a checkpoint, in a partitioned deployment. */
  owner: string;
  /** Set when this consumer reads only a partition of the terminals by a filter subject (the older, static split). */
  partitioned: boolean;
  /**
   * What the host knows of a terminal (its registration, whether this consumer's partition holds
   * it): the part of every step's config that decides which messages may touch its state. The
   * steps decide (processors/terminal.ts); the adapters only pass it on.
   */
  terminal(terminalId: string): TerminalView;
  /** Messages still pending on the consumer after the newest one seen: 0 means caught up. */
  pending(): number;
  /** A reading the stage could not step and left out (logged and counted with the reason). */
  skipped(stage: string, it: TelemetryItem, reason: string, err?: unknown): void;
}

/** One per-terminal step over the telemetry stream (cutoff, faults), fed by a shared consumer. */
export interface Stage {
  /** For logs and metrics. @default "stage" */
  name?: string;
  /** Readings of other terminals are skipped before they are parsed. @default all wanted */
  want?(terminalId: string): boolean;
  /**
   * Steps the readings, in stream order, and resolves when their effects are done. A stage that
   * throws changed nothing: it is called again with the same readings (or a terminal's share). It
   * may resolve to an AckLater: its steps are kept and the next batch may come, but the readings
   * are acknowledged only once what records them is stored (the cutoff stage's checkpoints).
   */
  handle(items: TelemetryItem[]): Promise<void | AckLater>;
  stop(): Promise<void>;
}

export type StageFactory = (ctx: StageContext) => Promise<Stage>;

export interface HostOptions {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  clock: () => number;
  durable: string;
  /** The registry bucket (`<p>_terminals`): readings count only from a terminal's registered gateway. */
  terminals: KV;
  /** For the counts of readings ignored and skipped. @default a registry of its own */
  registry?: Registry;
  /** A partition's subjects (docs/scaling.md). @default the whole stream */
  filterSubject?: string;
  /**
   * Partition `index` of `count`, keyed by gateway: the consumer reads the whole stream and hands
   * the stages only readings of gateways in this partition (decided from the subject, before any
   * parsing). @default one partition
   */
  partition?: { index: number; count: number };
  /** A registry view shared by the partitions of one process. @default one of its own */
  directory?: TerminalDirectory;
  stages: StageFactory[];
  /** @default 500 */
  maxBatch?: number;
  /** @default 20000 */
  maxAckPending?: number;
  /**
   * A reading whose `ts` is further ahead of its arrival (the stream's clock) is not stepped: a
   * processor keeps "newest reading time" per terminal, and a reading from the future would hide
   * the real ones until then. @default 60000 (ms)
   */
  maxAheadMs?: number;
  /**
   * Tries of a failed batch before it is tried terminal by terminal, and then of a terminal's
   * readings before they are skipped (only while NATS answers, and never for a failure that says
   * NATS or a stream is unavailable: an outage or an election is waited out). @default 3
   */
  attempts?: number;
  /** Delay between tries. @default 1000 */
  retryDelayMs?: number;
}

export interface RunningProcessor {
  stop(): Promise<void>;
}

/** Where a stage is with a batch that failed: the whole batch, or the terminals' shares still failing. */
interface Progress {
  tries: number;
  shares: TelemetryItem[][] | null;
}

/**
 * Runs stages on one durable consumer: each reading is delivered, decoded and acknowledged once
 * however many stages step it (measured: the second consumer of the same stream cost more CPU
 * than both steps together). A batch is acknowledged when every stage is done with it; a stage
 * that fails is retried in place, in order, and the stages that succeeded are not run again.
 *
 * Only readings a processor may trust reach the stages: of a registered terminal, from its
 * registered gateway, not too far ahead in time (the writer dead-letters the others, once). A
 * stage that keeps failing on a batch is tried terminal by terminal, so one terminal's reading
 * that it cannot handle is skipped and the others are stepped, rather than stall them all.
 */
/** Longer without a message or heartbeat from the server (heartbeats come every second) is not caught up. */
const QUIET_MS = 3000;

export async function startProcessorHost(o: HostOptions): Promise<RunningProcessor> {
  const registry = o.registry ?? new Registry();
  const ignored = shared(registry, "vend_processor_readings_ignored_total", () => new Counter({
    name: "vend_processor_readings_ignored_total",
    help: "Readings the processors did not step: unknown terminal, wrong gateway, or ts too far ahead",
    labelNames: ["reason"],
    registers: [registry],
  }));
  const skippedCount = shared(registry, "vend_processor_readings_skipped_total", () => new Counter({
    name: "vend_processor_readings_skipped_total",
    help: "Readings a stage could not handle and left out, so the others went on",
    labelNames: ["stage", "reason"],
    registers: [registry],
  }));
  const maxAheadMs = o.maxAheadMs ?? 60_000;
  const attempts = o.attempts ?? 3;
  const ownDirectory = o.directory === undefined;
  const directory = o.directory ?? (await followDirectory(o.terminals, o.log));
  await directory.ready;
  const part = o.partition && o.partition.count > 1 ? o.partition : null;
  const ownsGateway = (gatewayId: string) => part === null || partitionOf(gatewayId, part.count) === part.index;

  let lastPending = 0;
  let consumer: RunningConsumer | undefined;
  const terminal = (terminalId: string): TerminalView => {
    const info = directory.get(terminalId);
    return { terminalId, info, ours: part === null || (info !== undefined && ownsGateway(info.gatewayId)), maxAheadMs };
  };
  const ctx: StageContext = {
    owner: o.durable,
    partitioned: o.filterSubject !== undefined,
    terminal,
    // Not caught up while the server has not been heard from lately: a subscription silent after a
    // server's death, or not pulling yet, would keep saying 0 from its last message, and a silence
    // tick would cut sessions whose readings wait in the stream (docs/scaling.md, the cluster findings).
    pending: () => (consumer !== undefined && consumer.quietMs() <= QUIET_MS ? lastPending : Number.POSITIVE_INFINITY),
    skipped(stage, it, reason, err) {
      skippedCount.inc({ stage, reason });
      o.log.error({ err, stage, reason, terminalId: it.terminalId, gatewayId: it.gatewayId, seq: it.reading.seq, ts: it.reading.ts }, "reading skipped by a stage");
    },
  };
  // Made side by side: each restores its checkpoints and starts its watches (a takeover waits for all).
  const made = await Promise.allSettled(o.stages.map((make) => make(ctx)));
  const stages = made.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = made.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await Promise.all(stages.map((st) => st.stop()));
    if (ownDirectory) directory.stop();
    throw failed.reason;
  }
  const filters = stages.map((st) => st.want);
  const stageWants = filters.every((f) => f !== undefined) ? (id: string) => filters.some((f) => f!(id)) : () => true;
  // Unregistered terminals cost no parsing and no state (their readings are the writer's to dead-letter).
  const want = (id: string) => {
    if (!directory.get(id)) {
      ignored.inc({ reason: "unknown_terminal" });
      return false;
    }
    return stageWants(id);
  };
  // Per batch being retried (keyed by its item array): the stages already done with it, and what
  // they still store before it may be acknowledged (a stage done is not run again).
  const tries = new WeakMap<TelemetryItem[], { progress: Map<Stage, Progress | "done">; later: Promise<void>[] }>();
  const jsm = await jetstreamManager(o.nc);
  const natsAnswers = () =>
    jsm.getAccountInfo().then(
      () => true,
      () => false,
    );

  const attempt = async (st: Stage, items: TelemetryItem[], p: Progress, later: Promise<void>[]): Promise<boolean> => {
    const run = async (xs: TelemetryItem[]) => {
      const r = await st.handle(xs);
      if (isAckLater(r)) {
        // Handled here too: the batch may yet fail in another stage and never wait for it.
        r.ackAfter.catch(() => {});
        later.push(r.ackAfter);
      }
    };
    if (!p.shares) {
      try {
        await run(items);
        return true;
      } catch (e) {
        // JetStream not serving the stage's effects now (a stream's leader being elected after a
        // server died: seen for up to 30 s on 2.9; NATS away): waited out in place, the whole
        // batch, neither split nor skipped. Only a failure of the readings themselves is.
        if (unavailableDependency(e) !== null) throw e;
        if (++p.tries < attempts) throw e;
        // Whose reading is it? Each terminal's share on its own (stream order kept within each).
        const byTerminal = new Map<string, TelemetryItem[]>();
        for (const it of items) {
          const share = byTerminal.get(it.terminalId);
          if (share) share.push(it);
          else byTerminal.set(it.terminalId, [it]);
        }
        p.shares = [...byTerminal.values()];
        p.tries = 0;
      }
    }
    const errors: unknown[] = [];
    const failing: TelemetryItem[][] = [];
    for (const share of p.shares) {
      try {
        await run(share);
      } catch (e) {
        failing.push(share);
        errors.push(e);
      }
    }
    p.shares = failing;
    if (failing.length === 0) return true;
    const outage = errors.find((e) => unavailableDependency(e) !== null);
    if (outage) throw outage;
    if (++p.tries >= attempts && (await natsAnswers())) {
      failing.forEach((share, i) => {
        const reason = String((errors[i] as Error)?.message ?? errors[i]).slice(0, 200);
        for (const it of share) ctx.skipped(st.name ?? "stage", it, `failed ${attempts} times on its own: ${reason}`);
      });
      return true;
    }
    throw errors[0];
  };

  consumer = await runConsumer<TelemetryItem>({
    nc: o.nc,
    log: o.log,
    stream: o.subjects.streams.telemetry,
    durable: o.durable,
    ...(o.filterSubject ? { filterSubject: o.filterSubject } : {}),
    maxAckPending: o.maxAckPending ?? 20_000,
    // Small batches: a decision waits behind at most this many readings of other terminals.
    maxBatch: o.maxBatch ?? 500,
    ...(o.retryDelayMs !== undefined ? { retryDelayMs: o.retryDelayMs } : {}),
    // A batch waiting for JetStream (an election) is tried every second: a cutoff is not decided
    // seconds after the stream is back.
    maxRetryDelayMs: Math.max(o.retryDelayMs ?? 1000, 1000),
    decode: (m) => {
      lastPending = m.info.pending;
      // Another partition's gateway: not even parsed (a batch of 50 readings costs one look at its subject).
      if (part !== null && !ownsGateway(subjectTokens(o.subjects.prefix, m.subject)[1] ?? "")) return { items: [], rejects: [] };
      const d = validReadings(o.subjects.prefix, m, { now: o.clock, want });
      const items = d.items.filter((it) => {
        const why = refusal(terminal(it.terminalId), it.gatewayId, it.reading.ts, it.storedAt);
        if (why) ignored.inc({ reason: why });
        return why === null;
      });
      return { items, rejects: [] };
    },
    // Invalid readings are the writer's to dead-letter and count, once.
    deadLetter: async () => {},
    // Per-terminal state is built in stream order: a failed batch is retried, not handed back.
    retryInPlace: true,
    handle: async (items) => {
      let batch = tries.get(items);
      if (!batch) tries.set(items, (batch = { progress: new Map(), later: [] }));
      const { progress, later } = batch;
      const results = await Promise.allSettled(
        stages.map(async (st) => {
          const p = progress.get(st) ?? { tries: 0, shares: null };
          if (p === "done") return;
          progress.set(st, p);
          if (await attempt(st, items, p, later)) progress.set(st, "done");
        }),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
      return later.length > 0 ? { ackAfter: Promise.all(later).then(() => undefined) } : undefined;
    },
  });

  return {
    async stop() {
      await consumer.stop();
      await Promise.all(stages.map((st) => st.stop()));
      if (ownDirectory) directory.stop();
    },
  };
}
