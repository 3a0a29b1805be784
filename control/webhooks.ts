import { createHmac } from "node:crypto";
import type { Logger } from "pino";
import type { Db, Tx } from "./db.ts";
import { everyRound } from "./rounds.ts";

/** Queues a POST of `body` to the franchisee's webhook, if it has one, in the caller's transaction. */
export async function enqueueWebhook(tx: Tx, franchiseeId: string, body: unknown): Promise<void> {
  await tx.query(
    `INSERT INTO webhook_deliveries (franchisee_id, body, next_at)
     SELECT franchisee_id, $2::jsonb, now() FROM franchisee_webhooks WHERE franchisee_id = $1::text`,
    [franchiseeId, JSON.stringify(body)],
  );
}

export async function setWebhook(db: Db | Tx, franchiseeId: string, url: string, secret: string): Promise<void> {
  await db.query(
    `INSERT INTO franchisee_webhooks (franchisee_id, url, secret) VALUES ($1::text, $2::text, $3::text)
     ON CONFLICT (franchisee_id) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret, updated_at = now()`,
    [franchiseeId, url, secret],
  );
}

/** `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): what the receiver recomputes. */
export function signature(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

interface Due {
  id: number;
  url: string;
  secret: string;
  body: unknown;
  attempts: number;
  age_ms: number;
}

export interface WebhookOptions {
  db: Db;
  log: Logger;
  clock: () => number;
  /** @default 500 */
  everyMs?: number;
  /** Give up after this long (the delivery is kept, marked failed). @default 24 h */
  giveUpMs?: number;
  /** Longest wait between attempts. @default 10 min */
  maxBackoffMs?: number;
  timeoutMs?: number;
  /** Counts failed attempts by outcome (`retry`, `given_up`). */
  failures?: { inc(labels: { outcome: string }): void };
}

/**
 * Sends due deliveries, oldest first, one franchisee's in order: a delivery waits while an older one
 * of the same franchisee is still unacknowledged. Any 2xx acknowledges; anything else (or no
 * answer) is retried with exponential back-off. Claims lease the row for a minute, so several
 * control instances never send one delivery at once.
 */
export function startWebhookSender(o: WebhookOptions) {
  const giveUp = o.giveUpMs ?? 86_400_000;
  const maxBackoff = o.maxBackoffMs ?? 600_000;

  const claim = async (): Promise<Due[]> => {
    const r = await o.db.query<Due>(
      `UPDATE webhook_deliveries d SET next_at = vv_ms_to_ts($1::bigint + 60000)
       FROM franchisee_webhooks w
       WHERE d.franchisee_id = w.franchisee_id AND d.id IN (
         SELECT id FROM webhook_deliveries x
         WHERE x.delivered_at IS NULL AND x.failed_at IS NULL AND x.next_at <= vv_ms_to_ts($1::bigint)
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries y WHERE y.franchisee_id = x.franchisee_id
                           AND y.id < x.id AND y.delivered_at IS NULL AND y.failed_at IS NULL)
         ORDER BY id LIMIT 50 FOR UPDATE SKIP LOCKED)
       RETURNING d.id, w.url, w.secret, d.body, d.attempts, ($1::bigint - vv_ts_to_ms(d.created_at)) AS age_ms`,
      [o.clock()],
    );
    return r.rows;
  };

  const send = async (d: Due): Promise<void> => {
    const body = JSON.stringify(d.body);
    const ts = o.clock();
    let error: string | null = null;
    try {
      const res = await fetch(d.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-voltvend-delivery": String(d.id),
          "x-voltvend-timestamp": String(ts),
          "x-voltvend-signature": signature(d.secret, ts, body),
        },
        body,
        signal: AbortSignal.timeout(o.timeoutMs ?? 5000),
      });
      if (res.status < 200 || res.status >= 300) error = `HTTP ${res.status}`;
    } catch (e) {
      error = (e as Error).message;
    }
    if (!error) {
      await o.db.query("UPDATE webhook_deliveries SET delivered_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1::bigint", [d.id]);
      return;
    }
    const attempts = d.attempts + 1;
    const wait = Math.min(maxBackoff, 1000 * 2 ** Math.min(attempts - 1, 20));
    const failed = d.age_ms + wait > giveUp;
    await o.db.query(
      `UPDATE webhook_deliveries SET attempts = $2::int, last_error = $3::text, next_at = vv_ms_to_ts($4::bigint),
         failed_at = CASE WHEN $5::boolean THEN now() END WHERE id = $1::bigint`,
      [d.id, attempts, error, o.clock() + wait, failed],
    );
    o.failures?.inc({ outcome: failed ? "given_up" : "retry" });
    o.log[failed ? "error" : "warn"]({ delivery: d.id, attempts, error }, failed ? "webhook delivery given up" : "webhook delivery failed; will retry");
  };

  const round = async () => {
    for (const d of await claim()) await send(d);
  };
  const rounds = everyRound(o.everyMs ?? 500, round, { log: o.log, what: "webhook round" });
  return { stop: rounds.stop };
}
