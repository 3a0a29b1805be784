import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Subjects } from "../contracts/index.ts";
import { runConsumer, validReadings, type TelemetryItem } from "../ingest/index.ts";

/** What a stage learns from the consumer that feeds it. */
export interface StageContext {
  /** The durable consumer's name: who owns a checkpoint, in a partitioned deployment. */
  owner: string;
  /** Set when this consumer reads only a partition of the terminals. */
  partitioned: boolean;
  /** Messages still pending on the consumer after the newest one seen: 0 means caught up. */
  pending(): number;
}

/** One per-terminal step over the telemetry stream (cutoff, faults), fed by a shared consumer. */
export interface Stage {
  /** Readings of other terminals are skipped before they are parsed. @default all wanted */
  want?(terminalId: string): boolean;
  /** Steps the readings, in stream order, and resolves when their effects are done. */
  handle(items: TelemetryItem[]): Promise<void>;
  stop(): Promise<void>;
}

export type StageFactory = (ctx: StageContext) => Promise<Stage>;

export interface HostOptions {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  clock: () => number;
  durable: string;
  /** A partition's subjects (docs/scaling.md). @default the whole stream */
  filterSubject?: string;
  stages: StageFactory[];
  /** @default 500 */
  maxBatch?: number;
  /** @default 20000 */
  maxAckPending?: number;
}

export interface RunningProcessor {
  stop(): Promise<void>;
}

/**
 * Runs stages on one durable consumer: each reading is delivered, decoded and acknowledged once
 * however many stages step it (measured: the second consumer of the same stream cost more CPU
 * than both steps together). A batch is acknowledged when every stage is done with it; a stage
 * that fails is retried in place, in order, and the stages that succeeded are not run again.
 */
export async function startProcessorHost(o: HostOptions): Promise<RunningProcessor> {
  let lastPending = 0;
  const ctx: StageContext = { owner: o.durable, partitioned: o.filterSubject !== undefined, pending: () => lastPending };
  const stages: Stage[] = [];
  try {
    for (const make of o.stages) stages.push(await make(ctx));
  } catch (e) {
    await Promise.all(stages.map((st) => st.stop()));
    throw e;
  }
  const filters = stages.map((st) => st.want);
  const want = filters.every((f) => f !== undefined) ? (id: string) => filters.some((f) => f!(id)) : undefined;
  // Stages already done with a batch that is being retried (keyed by the batch's item array).
  const done = new WeakMap<TelemetryItem[], Set<Stage>>();

  const consumer = await runConsumer<TelemetryItem>({
    nc: o.nc,
    log: o.log,
    stream: o.subjects.streams.telemetry,
    durable: o.durable,
    ...(o.filterSubject ? { filterSubject: o.filterSubject } : {}),
    maxAckPending: o.maxAckPending ?? 20_000,
    // Small batches: a decision waits behind at most this many readings of other terminals.
    maxBatch: o.maxBatch ?? 500,
    decode: (m) => {
      lastPending = m.info.pending;
      return validReadings(o.subjects.prefix, m, { now: o.clock, ...(want ? { want } : {}) });
    },
    // Invalid readings are the writer's to dead-letter and count, once.
    deadLetter: async () => {},
    // Per-terminal state is built in stream order: a failed batch is retried, not handed back.
    retryInPlace: true,
    handle: async (items) => {
      const finished = done.get(items) ?? new Set<Stage>();
      done.set(items, finished);
      const results = await Promise.allSettled(
        stages.filter((st) => !finished.has(st)).map(async (st) => {
          await st.handle(items);
          finished.add(st);
        }),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    },
  });

  return {
    async stop() {
      await consumer.stop();
      await Promise.all(stages.map((st) => st.stop()));
    },
  };
}
