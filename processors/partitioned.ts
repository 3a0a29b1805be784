import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { RequestError } from "@nats-io/nats-core";
import { followDirectory } from "./directory.ts";
import { startProcessorHost, type HostOptions, type RunningProcessor } from "./host.ts";
import { runPartitionLeases, type Acquired } from "./leases.ts";
import { ackFloorOf, isGeneration, preparePartitionConsumer } from "./partition-consumer.ts";
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
  // Short: a consumer that does not answer (its leader being elected) is asked again, not waited for.
  const quickJsm = await jetstreamManager(o.nc, { timeout: 2000 });
  const listJsm = await jetstreamManager(o.nc, { checkAPI: false });
  /**
   * Each running partition's acknowledged floor, as its consumer last said (read every renewal
   * period) and written into its lease: a successor starts after it even when the consumer does
   * not answer (docs/scaling.md, "Takeover: the bound, the checkpoints, one cut").
   */
  const floors = new Map<number, number>();
  /** Each running partition's consumer (its generation), also written into its lease. */
  const consumers = new Map<number, string>();
  const renewMs = Math.max(100, Math.floor(o.leaseMs / 5));
  // Each instance answers on a subject of its own while its connection lives: a killed one has no
  // responder at once, so the others need not wait out its leases (processors/leases.ts).
  const ping = (id: string) => `${o.subjects.prefix}.int.processors.${id}`;
  const pong = o.nc.subscribe(ping(instanceId), { callback: (_err, m) => void m.respond("") });
  const maxAckPending = o.maxAckPending ?? 20_000;
  // Whether the others can ask us (our connection is up): then renewals failing in a JetStream
  // election do not stop our partitions (processors/leases.ts).
  let connected = !o.nc.isClosed();
  const statuses = o.nc.status() as AsyncIterable<{ type: string }> & { stop?(): void };
  void (async () => {
    for await (const st of statuses) {
      if (st.type === "disconnect") connected = false;
      else if (st.type === "reconnect") connected = true;
    }
  })().catch(() => {});
  const leases = await runPartitionLeases({
    kv: o.leases,
    count: o.count,
    instanceId,
    leaseMs: o.leaseMs,
    log,
    connected: () => connected && !o.nc.isClosed(),
    alive: (id) =>
      o.nc.request(ping(id), "", { timeout: 1000 }).then(
        () => true,
        (err: unknown) => (err instanceof RequestError && err.isNoResponders() ? false : null),
      ),
    renewMs,
    describe: (index) => ({ ...(floors.has(index) ? { floor: floors.get(index) } : {}), ...(consumers.has(index) ? { consumer: consumers.get(index) } : {}) }),
    start: async (index, how, previous, revision) => {
      const name = partitionDurable(o.durable, index, o.count);
      const stream = o.subjects.streams.telemetry;
      const recordedFloor = typeof previous?.floor === "number" && Number.isSafeInteger(previous.floor) && previous.floor >= 0 ? previous.floor : undefined;
      const recordedConsumer = typeof previous?.consumer === "string" && isGeneration(name, previous.consumer) ? previous.consumer : undefined;
      const { durable, floor } = await preparePartitionConsumer(quickJsm, {
        stream,
        name,
        base: o.durable,
        how,
        generation: revision,
        maxAckPending,
        log,
        listJsm,
        ...(recordedFloor !== undefined ? { recordedFloor } : {}),
        ...(recordedConsumer !== undefined ? { recordedConsumer } : {}),
      });
      if (floor !== null) floors.set(index, floor);
      consumers.set(index, durable);
      const host = await startProcessorHost({ ...o, log: log.child({ partition: index }), durable, partition: { index, count: o.count }, directory, maxAckPending }).catch((e: unknown) => {
        floors.delete(index);
        consumers.delete(index);
        throw e;
      });
      let reading = false;
      const poll = setInterval(() => {
        if (reading) return;
        reading = true;
        quickJsm.consumers
          .info(stream, durable)
          .then((ci) => void floors.set(index, Math.max(floors.get(index) ?? 0, ackFloorOf(ci))), () => {})
          .finally(() => (reading = false));
      }, renewMs);
      o.onStarted?.(index, how);
      return {
        async stop() {
          clearInterval(poll);
          await host.stop();
          floors.delete(index);
          consumers.delete(index);
        },
      };
    },
  }).catch((e: unknown) => {
    statuses.stop?.();
    pong.unsubscribe();
    directory.stop();
    throw e;
  });
  return {
    instanceId,
    owned: () => leases.owned(),
    async stop() {
      await leases.stop();
      statuses.stop?.();
      pong.unsubscribe();
      directory.stop();
    },
  };
}
