import { AckPolicy, DeliverPolicy, type ConsumerInfo, type JetStreamManager } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { isNotFound } from "../ingest/index.ts";
import type { Acquired } from "./leases.ts";

/**
 * The stream sequence up to which a consumer has everything acknowledged. A consumer that has
 * acknowledged nothing yet reports 0: its floor is then just before where it was told to start.
 */
export function ackFloorOf(ci: ConsumerInfo): number {
  if (ci.ack_floor.consumer_seq > 0 || ci.ack_floor.stream_seq > 0) return ci.ack_floor.stream_seq;
  return ci.config.deliver_policy === DeliverPolicy.StartSequence ? Math.max(0, (ci.config.opt_start_seq ?? 1) - 1) : 0;
}

/**
 * Partition k's consumers are generations of one name: `<name>` first, then `<name>_g<n>` made by a
 * takeover, n the lease's revision then (it only grows). The newest one is the partition's.
 */
const generationOf = (name: string, consumer: string): number | null => {
  if (consumer === name) return 0;
  const rest = consumer.startsWith(`${name}_g`) ? consumer.slice(name.length + 2) : "";
  return /^[0-9]{1,15}$/.test(rest) ? Number(rest) : null;
};
export const isGeneration = (name: string, consumer: string): boolean => generationOf(name, consumer) !== null;

/** Tries of each step before the start fails (and the partition is released, to be taken again). */
const TRIES = 15;

export interface PreparedConsumer {
  /** The consumer the partition's processors read. */
  durable: string;
  /** Its acknowledged floor as far as known (null: none yet, the host makes it to read from the start). */
  floor: number | null;
}

/**
 * Readies partition k's durable consumer before its processors start on it.
 *
 * - Taken over from a dead owner: the messages it had in hand stay unacknowledged until their ack
 *   wait (30 s) runs out, and would then arrive after newer readings of the same terminals. So a
 *   new generation of the consumer is made at the old one's acknowledged floor: everything after
 *   it is delivered again, in stream order, at once, and the old one is deleted. Steps are
 *   idempotent for what was already stepped (a reading at or before a meter's checkpoint changes
 *   nothing; cutoffs and fault changes carry message ids).
 * - A new name, not the same one made again: on a nats-server 2.9 cluster, a consumer deleted and
 *   made again under its name while one of its servers was down kept that server unhealthy ("not
 *   current") for good once it came back.
 * - The floor is the old consumer's own when it answers. A consumer whose leader died with its
 *   server (and whose client was killed) was seen not to answer for 50-75 s after a new leader was
 *   elected; then the floor its owner last wrote into the lease (`recordedFloor`, at most a renewal
 *   period old: a few readings stepped again) is used.
 * - New (the first run with this partition count): it starts where the processors' other consumers
 *   had acknowledged everything (the lowest floor among them), not at the stream's start (a week
 *   of readings stepped again, and fault changes older than the stream's duplicate window sent twice).
 */
export async function preparePartitionConsumer(
  jsm: JetStreamManager,
  o: {
    stream: string;
    /** The partition's first consumer name (`<base>_p<k>`, or `<base>` with one partition). */
    name: string;
    /** The processors' base durable: the other partitions' consumers start with it. */
    base: string;
    how: Acquired;
    /** This acquisition's generation number (the lease's revision). */
    generation: number;
    maxAckPending: number;
    log: Logger;
    recordedFloor?: number;
    recordedConsumer?: string;
    /** For listing the stream's consumers (slower than one consumer's info). @default jsm */
    listJsm?: JetStreamManager;
  },
): Promise<PreparedConsumer> {
  const create = (durable: string, startSeq: number) =>
    jsm.consumers.add(o.stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: startSeq,
      max_ack_pending: o.maxAckPending,
      ack_wait: 30 * 1_000_000_000,
    });
  // Each step is tried again while the cluster elects leaders (requests time out for seconds).
  const retried = async <T>(what: string, step: () => Promise<T>, tries = TRIES): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (err) {
        if (isNotFound(err) || attempt >= tries) throw err;
        o.log.warn({ err, stream: o.stream, name: o.name, attempt }, `partition consumer: ${what} not done yet; retrying`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  // The partition's consumers as the stream lists them (a consumer without a leader may be
  // missing). Not on a takeover's way when the lease names the consumer: after a server's death a
  // listing waits for every consumer's leader to answer, and timed out for seconds.
  const listed: ConsumerInfo[] = [];
  const others: ConsumerInfo[] = [];
  const list = () =>
    retried("list", async () => {
      listed.length = 0;
      others.length = 0;
      for await (const c of (o.listJsm ?? jsm).consumers.list(o.stream)) {
        if (isGeneration(o.name, c.name)) listed.push(c);
        else if (c.name === o.base || c.name.startsWith(`${o.base}_p`)) others.push(c);
      }
    });
  const knownOnTakeover = o.how === "takeover" && o.recordedConsumer !== undefined && o.recordedFloor !== undefined;
  if (!knownOnTakeover) await list();
  const newestListed = listed.sort((a, b) => generationOf(o.name, b.name)! - generationOf(o.name, a.name)!)[0];
  const recorded = o.recordedConsumer;
  const current =
    recorded !== undefined && (newestListed === undefined || generationOf(o.name, recorded)! >= generationOf(o.name, newestListed.name)!) ? recorded : newestListed?.name;
  // Generations older than the current one, left by a takeover whose delete did not get through.
  const stale = listed.filter((c) => c.name !== current).map((c) => c.name);
  const dropStale = (names: string[]) =>
    void Promise.all(
      names.map((n) =>
        retried("delete of an old generation", () => jsm.consumers.delete(o.stream, n)).catch((err: unknown) => {
          if (!isNotFound(err)) o.log.warn({ err, consumer: n }, "old partition consumer not deleted; it is tried again at the next start");
        }),
      ),
    );

  if (current !== undefined) {
    if (o.how === "clean") {
      const info = listed.find((c) => c.name === current) ?? (await retried("info", () => jsm.consumers.info(o.stream, current)));
      dropStale(stale);
      return { durable: current, floor: ackFloorOf(info) };
    }
    // With a floor in hand, a consumer that does not answer is not waited for long.
    const info = await retried("info", () => jsm.consumers.info(o.stream, current), o.recordedFloor !== undefined ? 1 : TRIES).catch((e: unknown) => {
      if (o.recordedFloor !== undefined) return null;
      // Gone (deleted by hand): from where the other partitions are, as for a new partition.
      if (isNotFound(e)) return null;
      throw e;
    });
    const lowestOther = others.reduce<number | null>((lo, c) => Math.min(lo ?? Infinity, ackFloorOf(c)), null);
    const floor = info ? ackFloorOf(info) : (o.recordedFloor ?? lowestOther ?? 0);
    const durable = `${o.name}_g${o.generation}`;
    await retried("create", () => create(durable, floor + 1));
    o.log.info(
      { consumer: durable, previous: current, from: floor + 1, unacknowledged: info ? info.num_ack_pending : null, floorFrom: info ? "consumer" : "lease" },
      "partition taken over: its consumer made anew at the acknowledged floor",
    );
    dropStale([...stale, current]);
    // Older generations a takeover could not delete: looked for after the start, not before it.
    if (knownOnTakeover)
      void list().then(
        () => dropStale(listed.filter((c) => c.name !== durable && c.name !== current).map((c) => c.name)),
        () => {},
      );
    return { durable, floor };
  }
  let lowest: number | null = null;
  for (const c of others) lowest = Math.min(lowest ?? Infinity, ackFloorOf(c));
  if (lowest !== null) {
    const from = lowest + 1;
    await retried("create", () => create(o.name, from));
    o.log.info({ consumer: o.name, from }, "partition consumer created where the others had acknowledged");
  }
  return { durable: o.name, floor: lowest };
}
