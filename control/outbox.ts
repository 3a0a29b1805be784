import type { JetStreamClient } from "@nats-io/jetstream";
import type { Db, Tx } from "./db.ts";

/** Records a message to publish once this transaction commits. */
export async function enqueue(tx: Tx, subject: string, msgId: string, payload: unknown): Promise<void> {
  await tx.query("INSERT INTO outbox (subject, msg_id, payload) VALUES ($1::text, $2::text, $3::jsonb)", [subject, msgId, JSON.stringify(payload)]);
}

/**
 * Publishes a batch of outbox messages to JetStream and deletes them once all are acknowledged,
 * in one transaction; a failure leaves them for the next round. Rows claimed by another instance
 * are skipped; a message published twice (a crash between ack and commit) is dropped by the
 * stream's duplicate window through its message id.
 */
export async function relayOutbox(db: Db, js: JetStreamClient, limit = 200): Promise<number> {
  const client = await db.connect();
  try {
    await client.query("BEGIN");
    const r = await client.query<{ id: number; subject: string; msg_id: string; payload: unknown }>(
      "SELECT id, subject, msg_id, payload FROM outbox ORDER BY id LIMIT $1::int FOR UPDATE SKIP LOCKED",
      [limit],
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
  } finally {
    client.release();
  }
}
