import type { JetStreamClient } from "@nats-io/jetstream";
import { withClient } from "../ingest/index.ts";
import type { Db, Tx } from "./db.ts";

export interface Outgoing {
  id: number;
  subject: string;
  msgId: string;
  payload: unknown;
}

/**
 * The largest message the outbox takes: half of NATS's default `max_payload` (1 MiB). A message
 * the server refuses for its size can never be published; it is refused here, in the transaction
 * that would record it, instead of waiting in the outbox forever.
 */
export const OUTBOX_MAX_BYTES = 512 * 1024;

/** Records a message to publish once this transaction commits. */
export async function enqueue(tx: Tx, subject: string, msgId: string, payload: unknown): Promise<Outgoing> {
  const json = JSON.stringify(payload);
  const size = Buffer.byteLength(json);
  if (size > OUTBOX_MAX_BYTES) throw new RangeError(`the message ${msgId} for ${subject} takes ${size} bytes, over the outbox's ${OUTBOX_MAX_BYTES}`);
  const r = await tx.query<{ id: number }>("INSERT INTO outbox (subject, msg_id, payload) VALUES ($1::text, $2::text, $3::jsonb) RETURNING id", [subject, msgId, json]);
  return { id: r.rows[0]!.id, subject, msgId, payload };
}

/**
 * Publishes committed outbox messages at once (the latency path) and deletes them. What fails
 * stays for relayOutbox, which only takes messages older than its grace period, so the two do not
 * race to publish one message twice.
 */
export async function publishNow(db: Db, js: JetStreamClient, out: Outgoing[]): Promise<void> {
  if (out.length === 0) return;
  await Promise.all(out.map((m) => js.publish(m.subject, JSON.stringify(m.payload), { msgID: m.msgId })));
  await db.query("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [out.map((m) => m.id)]);
}

/** Outbox messages the relay could not publish this round; they stay for the next. */
export class OutboxRelayError extends Error {
  constructor(
    readonly failed: { id: number; msgId: string }[],
    options?: ErrorOptions,
  ) {
    super(`${failed.length} outbox message(s) not published, kept for the next round: ${failed.slice(0, 5).map((f) => f.msgId).join(", ")}`, options);
    this.name = "OutboxRelayError";
  }
}

/**
 * Publishes a batch of outbox messages to JetStream and deletes those acknowledged, in one
 * transaction; a message that fails stays for the next round, and does not hold back the others
 * (a message that can never be published, one from before OUTBOX_MAX_BYTES, used to stall every
 * message behind it). Throws OutboxRelayError after the commit when any failed. Rows claimed by
 * another instance are skipped; a message published twice (a crash between ack and commit) is
 * dropped by the stream's duplicate window through its message id.
 */
export async function relayOutbox(db: Db, js: JetStreamClient, limit = 200, graceMs = 2000): Promise<number> {
  return withClient(db, async (client) => {
    try {
      await client.query("BEGIN");
      const r = await client.query<{ id: number; subject: string; msg_id: string; payload: unknown }>(
        `SELECT id, subject, msg_id, payload FROM outbox WHERE created_at < now() - $2::int * interval '1 millisecond'
         ORDER BY id LIMIT $1::int FOR UPDATE SKIP LOCKED`,
        [limit, graceMs],
      );
      if (r.rows.length === 0) {
        await client.query("ROLLBACK");
        return { done: 0, failed: [] };
      }
      const sent = await Promise.allSettled(r.rows.map((m) => js.publish(m.subject, JSON.stringify(m.payload), { msgID: m.msg_id })));
      const done = r.rows.filter((_, i) => sent[i]!.status === "fulfilled");
      await client.query("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [done.map((m) => m.id)]);
      await client.query("COMMIT");
      const failed = r.rows.flatMap((m, i) => (sent[i]!.status === "rejected" ? [{ id: m.id, msgId: m.msg_id, reason: (sent[i] as PromiseRejectedResult).reason as unknown }] : []));
      return { done: done.length, failed };
    } catch (e) {
      await client.query("ROLLBACK").catch(() => {});
      throw e;
    }
  }).then(({ done, failed }) => {
    if (failed.length) throw new OutboxRelayError(failed.map(({ id, msgId }) => ({ id, msgId })), { cause: failed[0]!.reason });
    return done;
  });
}
