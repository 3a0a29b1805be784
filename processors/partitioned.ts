import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { RequestError } from "@nats-io/nats-core";
import { followDirectory } from "./directory.ts";
import { startProcessorHost, type HostOptions, type RunningProcessor } from "./host.ts";
import { runPartitionLeases, type Acquired } from "./leases.ts";
import { preparePartitionConsumer } from "./partition-consumer.ts";
import { partitionDurable } from "./partitions.ts";

export interface PartitionedOptions extends Omit<HostOptions, "durable" | "partition" | "directory" | "filterSubject"> {
  /** Base name of the durable consumers (`<p>_processors`); partition k's is `<base>_p<k>` (one partition: the base). */
  durable: string;
  /** The leases bucket (`<p>_leases`). */
  leases: KV;
  count: number;
  leaseMs: number;
  /** @default host name, process id and a random part */
  instanceId?: string;
  /** Told each partition this instance starts (after its checkpoints are restored) and how it came. */
  onStarted?(index: number, how: Acquired): void;
}

export interface PartitionedProcessors extends RunningProcessor {
  readonly instanceId: string;
  owned(): number[];
}

/** A unique id for a running process, made of what an operator recognises in a log. */
export function newInstanceId(): string {
  return `${hostname().replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40)}-${process.pid}-${randomBytes(3).toString("hex")}`;
}

/**
 * The processors of one instance among several: it runs a host (the stages on one durable
 * consumer) for each partition it holds the lease of, and hands partitions over and takes them
 * over as instances come and go (processors/leases.ts). One registry view for all its partitions.
 */
export async function startPartitionedProcessors(o: PartitionedOptions): Promise<PartitionedProcessors> {
  const instanceId = o.instanceId ?? newInstanceId();
  const log = o.log.child({ instance: instanceId });
  const directory = await followDirectory(o.terminals, log);
  await directory.ready;
  const jsm = await jetstreamManager(o.nc);
  // Each instance answers on a subject of its own while its connection lives: a killed one has no
  // responder at once, so the others need not wait out its leases (processors/leases.ts).
  const ping = (id: string) => `${o.subjects.prefix}.int.processors.${id}`;
  const pong = o.nc.subscribe(ping(instanceId), { callback: (_err, m) => void m.respond("") });
  const maxAckPending = o.maxAckPending ?? 20_000;
  const leases = await runPartitionLeases({
    kv: o.leases,
    count: o.count,
    instanceId,
    leaseMs: o.leaseMs,
    log,
    alive: (id) =>
      o.nc.request(ping(id), "", { timeout: 1000 }).then(
        () => true,
        (err: unknown) => (err instanceof RequestError && err.isNoResponders() ? false : null),
      ),
    start: async (index, how) => {
      const durable = partitionDurable(o.durable, index, o.count);
      await preparePartitionConsumer(jsm, { stream: o.subjects.streams.telemetry, durable, base: o.durable, how, maxAckPending, log });
      const host = await startProcessorHost({ ...o, log: log.child({ partition: index }), durable, partition: { index, count: o.count }, directory, maxAckPending });
      o.onStarted?.(index, how);
      return host;
    },
  }).catch((e: unknown) => {
    pong.unsubscribe();
    directory.stop();
    throw e;
  });
  return {
    instanceId,
    owned: () => leases.owned(),
    async stop() {
      await leases.stop();
      pong.unsubscribe();
      directory.stop();
    },
  };
}
