import type { Db, Tx } from "../db.ts";

type Q = Db | Tx;

export interface OrderRow {
  orderId: string;
  provider: string;
  userId: string;
  purpose: "topup" | "debt";
  amountCents: number;
  status: "pending" | "paid" | "closed";
  idempotencyKey: string;
  transactionId: string | null;
  payerRef: string | null;
  createdAt: number;
  expiresAt: number;
  paidAt: number | null;
}

const orderCols = `order_id AS "orderId", provider, user_id AS "userId", purpose, amount_cents AS "amountCents", status,
  idempotency_key AS "idempotencyKey", transaction_id AS "transactionId", payer_ref AS "payerRef",
  vv_ts_to_ms(created_at) AS "createdAt", vv_ts_to_ms(expires_at) AS "expiresAt", vv_ts_to_ms(paid_at) AS "paidAt"`;

/** A new order, or the one this user already created with this idempotency key (`created` false). */
export async function insertOrder(
  tx: Tx,
  o: Pick<OrderRow, "orderId" | "provider" | "userId" | "purpose" | "amountCents" | "idempotencyKey" | "createdAt" | "expiresAt">,
): Promise<{ order: OrderRow; created: boolean }> {
  const r = await tx.query<OrderRow>(
    `INSERT INTO payment_orders (order_id, provider, user_id, purpose, amount_cents, idempotency_key, created_at, expires_at)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint, $6::text, vv_ms_to_ts($7::bigint), vv_ms_to_ts($8::bigint))
     ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING ${orderCols}`,
    [o.orderId, o.provider, o.userId, o.purpose, o.amountCents, o.idempotencyKey, o.createdAt, o.expiresAt],
  );
  if (r.rows[0]) return { order: r.rows[0], created: true };
  const prior = await tx.query<OrderRow>(`SELECT ${orderCols} FROM payment_orders WHERE user_id = $1::text AND idempotency_key = $2::text`, [o.userId, o.idempotencyKey]);
  return { order: prior.rows[0]!, created: false };
}

export async function orderById(q: Q, orderId: string, lock = false): Promise<OrderRow | null> {
  const r = await q.query<OrderRow>(`SELECT ${orderCols} FROM payment_orders WHERE order_id = $1::text${lock ? " FOR UPDATE" : ""}`, [orderId]);
  return r.rows[0] ?? null;
}

export async function markOrderPaid(tx: Tx, orderId: string, p: { transactionId: string; payerRef: string; paidAt: number }): Promise<OrderRow> {
  const r = await tx.query<OrderRow>(
    `UPDATE payment_orders SET status = 'paid', transaction_id = $2::text, payer_ref = $3::text, paid_at = vv_ms_to_ts($4::bigint)
     WHERE order_id = $1::text RETURNING ${orderCols}`,
    [orderId, p.transactionId, p.payerRef, p.paidAt],
  );
  return r.rows[0]!;
}

export async function closeOrder(tx: Tx, orderId: string): Promise<void> {
  await tx.query("UPDATE payment_orders SET status = 'closed' WHERE order_id = $1::text AND status = 'pending'", [orderId]);
}

/** Pending orders created before `before`, oldest first: those whose notification may never come. */
export async function pendingOrders(q: Q, before: number, limit: number): Promise<OrderRow[]> {
  const r = await q.query<OrderRow>(
    `SELECT ${orderCols} FROM payment_orders WHERE status = 'pending' AND created_at < vv_ms_to_ts($1::bigint) ORDER BY created_at LIMIT $2::int`,
    [before, limit],
  );
  return r.rows;
}

/** The payer account of the user's latest paid order at a provider (any provider when null). */
export async function lastPayer(q: Q, userId: string, provider: string | null): Promise<{ provider: string; payerRef: string } | null> {
  const r = await q.query<{ provider: string; payerRef: string }>(
    `SELECT provider, payer_ref AS "payerRef" FROM payment_orders
     WHERE user_id = $1::text AND status = 'paid' AND payer_ref IS NOT NULL AND ($2::text IS NULL OR provider = $2::text)
     ORDER BY paid_at DESC LIMIT 1`,
    [userId, provider],
  );
  return r.rows[0] ?? null;
}

/**
 * Records a notification. An accepted one is recorded in the transaction of its effect, and its
 * nonce once: false means the nonce was accepted before (a replay), and nothing is recorded.
 */
export async function recordNotification(
  q: Q,
  n: { provider: string; accepted: boolean; reason?: string | null; nonce?: string | null; orderId?: string | null; transactionId?: string | null; body: string; at: number },
): Promise<boolean> {
  const r = await q.query(
    `INSERT INTO payment_notifications (provider, accepted, reason, nonce, order_id, transaction_id, body, received_at)
     VALUES ($1::text, $2::boolean, $3::text, $4::text, $5::text, $6::text, $7::text, vv_ms_to_ts($8::bigint))
     ON CONFLICT DO NOTHING`,
    [n.provider, n.accepted, n.reason ?? null, n.nonce ?? null, n.orderId ?? null, n.transactionId ?? null, n.body.slice(0, 2000), n.at],
  );
  return r.rowCount === 1;
}

/** Refused notifications, newest first (for the operator). */
export async function refusedNotifications(q: Q, limit: number): Promise<{ provider: string; reason: string; orderId: string | null; receivedAt: number }[]> {
  const r = await q.query<{ provider: string; reason: string; orderId: string | null; receivedAt: number }>(
    `SELECT provider, reason, order_id AS "orderId", vv_ts_to_ms(received_at) AS "receivedAt" FROM payment_notifications
     WHERE NOT accepted ORDER BY received_at DESC, id DESC LIMIT $1::int`,
    [limit],
  );
  return r.rows;
}

export interface WithdrawalRow {
  withdrawalId: string;
  userId: string;
  provider: string;
  payerRef: string;
  amountCents: number;
  status: "pending" | "succeeded" | "failed";
  idempotencyKey: string;
  actor: string;
  transactionId: string | null;
  failure: string | null;
  createdAt: number;
  doneAt: number | null;
}

const wdCols = `withdrawal_id AS "withdrawalId", user_id AS "userId", provider, payer_ref AS "payerRef", amount_cents AS "amountCents",
  status, idempotency_key AS "idempotencyKey", actor, transaction_id AS "transactionId", failure,
  vv_ts_to_ms(created_at) AS "createdAt", vv_ts_to_ms(done_at) AS "doneAt"`;

export async function withdrawalByKey(q: Q, userId: string, key: string): Promise<WithdrawalRow | null> {
  const r = await q.query<WithdrawalRow>(`SELECT ${wdCols} FROM withdrawals WHERE user_id = $1::text AND idempotency_key = $2::text`, [userId, key]);
  return r.rows[0] ?? null;
}

export async function withdrawalById(q: Q, id: string, lock = false): Promise<WithdrawalRow | null> {
  const r = await q.query<WithdrawalRow>(`SELECT ${wdCols} FROM withdrawals WHERE withdrawal_id = $1::text${lock ? " FOR UPDATE" : ""}`, [id]);
  return r.rows[0] ?? null;
}

export async function insertWithdrawal(tx: Tx, w: Pick<WithdrawalRow, "withdrawalId" | "userId" | "provider" | "payerRef" | "amountCents" | "idempotencyKey" | "actor" | "createdAt">): Promise<WithdrawalRow> {
  const r = await tx.query<WithdrawalRow>(
    `INSERT INTO withdrawals (withdrawal_id, user_id, provider, payer_ref, amount_cents, idempotency_key, actor, created_at)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint, $6::text, $7::text, vv_ms_to_ts($8::bigint)) RETURNING ${wdCols}`,
    [w.withdrawalId, w.userId, w.provider, w.payerRef, w.amountCents, w.idempotencyKey, w.actor, w.createdAt],
  );
  return r.rows[0]!;
}

export async function finishWithdrawal(tx: Tx, id: string, f: { status: "succeeded" | "failed"; transactionId?: string | null; failure?: string | null; at: number }): Promise<WithdrawalRow> {
  const r = await tx.query<WithdrawalRow>(
    `UPDATE withdrawals SET status = $2::text, transaction_id = $3::text, failure = $4::text, done_at = vv_ms_to_ts($5::bigint)
     WHERE withdrawal_id = $1::text RETURNING ${wdCols}`,
    [id, f.status, f.transactionId ?? null, f.failure ?? null, f.at],
  );
  return r.rows[0]!;
}

export async function pendingWithdrawals(q: Q, before: number, limit: number): Promise<WithdrawalRow[]> {
  const r = await q.query<WithdrawalRow>(
    `SELECT ${wdCols} FROM withdrawals WHERE status = 'pending' AND created_at < vv_ms_to_ts($1::bigint) ORDER BY created_at LIMIT $2::int`,
    [before, limit],
  );
  return r.rows;
}
