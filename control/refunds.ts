import { randomUUID } from "node:crypto";
import type { Principal } from "./auth.ts";
import type { Db, Tx } from "./db.ts";
import { conflict, notFound } from "./errors.ts";
import { audit } from "./audit.ts";
import { sessionById } from "./sessions/store.ts";
import { lockWallet, post, wallet, type Wallet } from "./wallet.ts";

type Q = Db | Tx;

export interface Refund {
  refundId: string;
  sessionId: string;
  userId: string;
  amountCents: number;
  reason: string;
  actor: string;
  createdAt: number;
}

const cols = `refund_id AS "refundId", session_id AS "sessionId", user_id AS "userId", amount_cents AS "amountCents", reason, actor,
  vv_ts_to_ms(created_at) AS "createdAt"`;

export async function refundsOfSession(q: Q, sessionId: string): Promise<Refund[]> {
  const r = await q.query<Refund>(`SELECT ${cols} FROM refunds WHERE session_id = $1::text ORDER BY created_at, refund_id`, [sessionId]);
  return r.rows;
}

export async function refundsOfSessions(q: Q, sessionIds: string[]): Promise<Refund[]> {
  const r = await q.query<Refund>(`SELECT ${cols} FROM refunds WHERE session_id = ANY($1::text[]) ORDER BY created_at, refund_id`, [sessionIds]);
  return r.rows;
}

async function refundByKey(q: Q, key: string): Promise<Refund | null> {
  const r = await q.query<Refund>(`SELECT ${cols} FROM refunds WHERE idempotency_key = $1::text`, [key]);
  return r.rows[0] ?? null;
}

/**
 * An admin gives back part or all of a session's captured fee: in one transaction, under the
 * session's row lock (so two refunds of one session cannot together pass its fee), the refund,
 * its ledger entry and its audit entry. The money pays the user's postpaid debt first (a
 * postpaid fee not yet paid is simply owed less), the rest reaches the balance. The same
 * idempotency key again answers the first refund (`created` false); with another session or
 * amount it is 409 `idempotency_key_reused`.
 */
export async function refundFee(
  tx: Tx,
  actor: Principal,
  sessionId: string,
  b: { amountCents: number; reason: string; idempotencyKey: string },
  now: number,
): Promise<{ created: boolean; refund: Refund; refundedCents: number; feeCents: number; wallet: Wallet }> {
  const s = await sessionById(tx, sessionId, true);
  if (!s) throw notFound("session", sessionId);
  const prior = await refundByKey(tx, b.idempotencyKey);
  if (prior) {
    if (prior.sessionId !== sessionId || prior.amountCents !== b.amountCents)
      throw conflict("idempotency_key_reused", `idempotency key ${JSON.stringify(b.idempotencyKey)} refunded ${prior.amountCents} cents of session ${prior.sessionId}`);
    const all = await refundsOfSession(tx, sessionId);
    return { created: false, refund: prior, refundedCents: all.reduce((a, r) => a + r.amountCents, 0), feeCents: s.feeCents, wallet: (await wallet(tx, s.userId))! };
  }
  if (s.state !== "completed") throw conflict("session_not_completed", `session ${sessionId} is ${s.state}: only a completed session's fee can be refunded`);
  const refunded = (await refundsOfSession(tx, sessionId)).reduce((a, r) => a + r.amountCents, 0);
  if (refunded + b.amountCents > s.feeCents)
    throw conflict("refund_exceeds_fee", `session ${sessionId} was billed ${s.feeCents} cents and ${refunded} are refunded already: at most ${s.feeCents - refunded} more`);
  const w = await lockWallet(tx, s.userId);
  const settle = Math.min(w.debtCents, b.amountCents);
  const refundId = `RF-${randomUUID()}`;
  const r = await tx.query<Refund>(
    `INSERT INTO refunds (refund_id, session_id, user_id, franchisee_id, terminal_id, amount_cents, reason, idempotency_key, actor, created_at)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint, $7::text, $8::text, $9::text, vv_ms_to_ts($10::bigint)) RETURNING ${cols}`,
    [refundId, sessionId, s.userId, s.franchiseeId, s.terminalId, b.amountCents, b.reason, b.idempotencyKey, `${actor.role}:${actor.sub}`, now],
  );
  await post(tx, s.userId, "refund", { balance: b.amountCents - settle, debt: -settle }, { sessionId, reference: refundId });
  const after = (await wallet(tx, s.userId))!;
  await audit(tx, {
    actor,
    action: "session.refund",
    objectType: "session",
    objectId: sessionId,
    before: { feeCents: s.feeCents, refundedCents: refunded, userId: s.userId, balanceCents: w.balanceCents, debtCents: w.debtCents },
    after: { feeCents: s.feeCents, refundedCents: refunded + b.amountCents, userId: s.userId, balanceCents: after.balanceCents, debtCents: after.debtCents, refundId, amountCents: b.amountCents },
    reason: b.reason,
    atMs: now,
  });
  return { created: true, refund: r.rows[0]!, refundedCents: refunded + b.amountCents, feeCents: s.feeCents, wallet: after };
}
