import type { JetStreamClient } from "@nats-io/jetstream";
import { withClient } from "../ingest/index.ts";
import type { Db, Tx } from "./db.ts";

export interface Outgoing {
  id: number;
  subject: string;
  msgId: string;
  payload: unknown;
}

/** Records a message to publish once this transaction commits. */
export async function enqueue(tx: Tx, subject: string, msgId: string, payload: unknown): Promise<Outgoing> {
  const r = await tx.query<{ id: number }>("INSERT INTO outbox (subject, msg_id, payload) VALUES ($1::text, $2::text, $3::jsonb) RETURNING id", [
    subject,
    msgId,
    JSON.stringify(payload),
  ]);
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

/**
 * Publishes a batch of outbox messages to JetStream and deletes them once all are acknowledged,
 * in one transaction; a failure leaves them for the next round. Rows claimed by another instance
 * are skipped; a message published twice (a crash between ack and commit) is dropped by the
 * stream's duplicate window through its message id.
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
        return 0;
      }
      await Promise.all(r.rows.map((m) => js.publish(m.subject, JSON.stringify(m.payload), { msgID: m.msg_id })));
      await client.query("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r.rows.map((m) => m.id)]);
      await client.query("COMMIT");
      return r.rows.length;
    } catch (e) {
      await client.query("ROLLBACK").catch(() => {});
      throw e;
    }
  });
}
