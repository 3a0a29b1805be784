import { AckPolicy, DeliverPolicy, type JetStreamManager } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { isNotFound } from "../ingest/index.ts";
import type { Acquired } from "./leases.ts";

/**
 * Readies partition k's durable consumer before its processors start on it.
 *
 * - Taken over from a dead owner: the messages it had in hand stay unacknowledged until their ack
 *   wait (30 s) runs out, and would then arrive after newer readings of the same terminals. So the
 *   consumer is made again at its acknowledged floor: everything after it is delivered again, in
 *   stream order, at once. Steps are idempotent for what was already stepped (a reading at or
 *   before a meter's checkpoint changes nothing; cutoffs and fault changes carry message ids).
 * - New (the first run with this partition count): it starts where the processors' other consumers
 *   had acknowledged everything (the lowest floor among them), not at the stream's start (a week
 *   of readings stepped again, and fault changes older than the stream's duplicate window sent twice).
 */
export async function preparePartitionConsumer(
  jsm: JetStreamManager,
  o: { stream: string; durable: string; base: string; how: Acquired; maxAckPending: number; log: Logger },
): Promise<void> {
  const create = (startSeq: number) =>
    jsm.consumers.add(o.stream, {
      durable_name: o.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: startSeq,
      max_ack_pending: o.maxAckPending,
      ack_wait: 30 * 1_000_000_000,
    });
  const info = await jsm.consumers.info(o.stream, o.durable).catch((e: unknown) => {
    if (isNotFound(e)) return null;
    throw e;
  });
  if (info) {
    if (o.how === "clean") return;
    const floor = info.ack_floor.stream_seq;
    await jsm.consumers.delete(o.stream, o.durable);
    // Only this process knows the floor now: the new consumer is tried until it is made (a
    // cluster electing a leader times requests out for a few seconds).
    for (let attempt = 1; ; attempt++) {
      try {
        await create(floor + 1);
        break;
      } catch (err) {
        if (attempt >= 30) throw err;
        o.log.warn({ err, durable: o.durable, attempt }, "partition consumer not made again yet; retrying");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    o.log.info({ durable: o.durable, from: floor + 1, unacknowledged: info.num_ack_pending }, "partition consumer reset to its acknowledged floor");
    return;
  }
  let lowest: number | null = null;
  for await (const c of jsm.consumers.list(o.stream)) {
    if (c.name !== o.base && !c.name.startsWith(`${o.base}_p`)) continue;
    lowest = Math.min(lowest ?? Infinity, c.ack_floor.stream_seq);
  }
  if (lowest !== null) {
    await create(lowest + 1);
    o.log.info({ durable: o.durable, from: lowest + 1 }, "partition consumer created where the others had acknowledged");
  }
}
