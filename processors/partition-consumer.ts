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

/** Tries of each step before the start fails (and the partition is released, to be taken again). */
const TRIES = 15;

/**
 * Readies partition k's durable consumer before its processors start on it; resolves with its
 * acknowledged floor as far as known (null: no consumer yet, the host makes one).
 *
 * - Taken over from a dead owner: the messages it had in hand stay unacknowledged until their ack
 *   wait (30 s) runs out, and would then arrive after newer readings of the same terminals. So the
 *   consumer is made again at its acknowledged floor: everything after it is delivered again, in
 *   stream order, at once. Steps are idempotent for what was already stepped (a reading at or
 *   before a meter's checkpoint changes nothing; cutoffs and fault changes carry message ids).
 * - The floor is the consumer's own when it answers. On a nats-server 2.9 cluster, a consumer whose
 *   leader died with its server (and whose client was killed) was seen not to answer for 50-75 s
 *   after a new leader was elected; then the floor its owner last wrote into the lease
 *   (`recordedFloor`, at most a renewal period old: a few readings stepped again) is used, and the
 *   consumer is deleted and made again, which only the meta leader has to answer.
 * - New (the first run with this partition count): it starts where the processors' other consumers
 *   had acknowledged everything (the lowest floor among them), not at the stream's start (a week
 *   of readings stepped again, and fault changes older than the stream's duplicate window sent twice).
 */
export async function preparePartitionConsumer(
  jsm: JetStreamManager,
  o: { stream: string; durable: string; base: string; how: Acquired; maxAckPending: number; log: Logger; recordedFloor?: number },
): Promise<number | null> {
  const create = (startSeq: number) =>
    jsm.consumers.add(o.stream, {
      durable_name: o.durable,
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
        o.log.warn({ err, durable: o.durable, attempt }, `partition consumer: ${what} not done yet; retrying`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  const infoOf = (tries: number) =>
    retried("info", () => jsm.consumers.info(o.stream, o.durable), tries).catch((e: unknown): ConsumerInfo | null | "unanswered" => {
      if (isNotFound(e)) return null;
      if (o.how === "takeover" && o.recordedFloor !== undefined) return "unanswered";
      throw e;
    });
  // With a floor in hand, a consumer that does not answer is not waited for long.
  const info = await infoOf(o.how === "takeover" && o.recordedFloor !== undefined ? 1 : TRIES);
  if (info !== null) {
    if (info !== "unanswered" && o.how === "clean") return ackFloorOf(info);
    const floor = info === "unanswered" ? o.recordedFloor! : ackFloorOf(info);
    await retried("delete", () => jsm.consumers.delete(o.stream, o.durable)).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
    await retried("create", () => create(floor + 1));
    o.log.info(
      { durable: o.durable, from: floor + 1, unacknowledged: info === "unanswered" ? null : info.num_ack_pending, floorFrom: info === "unanswered" ? "lease" : "consumer" },
      "partition consumer reset to its acknowledged floor",
    );
    return floor;
  }
  let lowest: number | null = null;
  for await (const c of jsm.consumers.list(o.stream)) {
    if (c.name !== o.base && !c.name.startsWith(`${o.base}_p`)) continue;
    lowest = Math.min(lowest ?? Infinity, c.ack_floor.stream_seq);
  }
  if (lowest !== null) {
    await retried("create", () => create(lowest + 1));
    o.log.info({ durable: o.durable, from: lowest + 1 }, "partition consumer created where the others had acknowledged");
  }
  return lowest;
}
