import type { Db, Tx } from "./db.ts";
import { conflict, notFound } from "./errors.ts";

type Q = Db | Tx;

export interface Wallet {
  userId: string;
  balanceCents: number;
  heldCents: number;
  creditLimitCents: number;
  debtCents: number;
}

type Kind = "topup" | "hold" | "release" | "capture" | "debt" | "debt_settlement";
interface Deltas {
  balance?: number;
  held?: number;
  debt?: number;
}

const walletCols = `user_id AS "userId", balance_cents AS "balanceCents", held_cents AS "heldCents",
  credit_limit_cents AS "creditLimitCents", debt_cents AS "debtCents"`;

/**
 * Users come from the identity provider: one that the platform has not seen is created on first
 * use with no credit, so a new user can top up and charge without an admin step.
 */
export async function ensureUser(db: Q, userId: string): Promise<void> {
  await db.query("INSERT INTO users (user_id) VALUES ($1::text) ON CONFLICT DO NOTHING", [userId]);
}

export async function upsertUser(db: Q, userId: string, creditLimitCents: number | undefined): Promise<Wallet> {
  const r = await db.query<Wallet>(
    `INSERT INTO users (user_id, credit_limit_cents) VALUES ($1::text, coalesce($2::bigint, 0))
     ON CONFLICT (user_id) DO UPDATE SET credit_limit_cents = coalesce($2::bigint, users.credit_limit_cents), updated_at = now()
     RETURNING ${walletCols}`,
    [userId, creditLimitCents ?? null],
  );
  return r.rows[0]!;
}

export async function wallet(db: Q, userId: string): Promise<Wallet | null> {
  const r = await db.query<Wallet>(`SELECT ${walletCols} FROM users WHERE user_id = $1::text`, [userId]);
  return r.rows[0] ?? null;
}

/** Locks the wallet for the rest of the transaction: every money decision reads it under this lock. */
export async function lockWallet(tx: Tx, userId: string): Promise<Wallet> {
  const r = await tx.query<Wallet>(`SELECT ${walletCols} FROM users WHERE user_id = $1::text FOR UPDATE`, [userId]);
  if (!r.rows[0]) throw notFound("user", userId);
  return r.rows[0];
}

/**
 * One ledger entry and the matching change of the cached figures, in one statement. Returns
 * false when the entry already exists (a repeated top-up reference, or a session's entry of
 * that kind), in which case nothing changed.
 */
export async function post(tx: Tx, userId: string, kind: Kind, d: Deltas, ref: { sessionId?: string; reference?: string } = {}): Promise<boolean> {
  const r = await tx.query(
    `WITH e AS (
       INSERT INTO wallet_ledger (user_id, kind, balance_delta, held_delta, debt_delta, session_id, reference)
       VALUES ($1::text, $2::text, $3::bigint, $4::bigint, $5::bigint, $6::text, $7::text)
       ON CONFLICT DO NOTHING
       RETURNING balance_delta, held_delta, debt_delta)
     UPDATE users u SET balance_cents = u.balance_cents + e.balance_delta, held_cents = u.held_cents + e.held_delta,
       debt_cents = u.debt_cents + e.debt_delta, updated_at = now()
     FROM e WHERE u.user_id = $1::text`,
    [userId, kind, d.balance ?? 0, d.held ?? 0, d.debt ?? 0, ref.sessionId ?? null, ref.reference ?? null],
  );
  return r.rowCount === 1;
}

/**
 * A top-up settles unpaid postpaid debt first; the rest goes to the balance. Idempotent by
 * reference: the same reference and amount again credits nothing; the same reference with another
 * amount is a conflict (409 `reference_reused`), not a silent success, since one of the two
 * amounts is wrong.
 */
export async function topUp(tx: Tx, userId: string, amountCents: number, reference: string): Promise<{ credited: boolean; wallet: Wallet }> {
  await ensureUser(tx, userId);
  const w = await lockWallet(tx, userId);
  const credited = await post(tx, userId, "topup", { balance: amountCents }, { reference });
  if (!credited) {
    const first = await tx.query<{ amount: string }>(
      "SELECT balance_delta::text AS amount FROM wallet_ledger WHERE user_id = $1::text AND kind = 'topup' AND reference = $2::text",
      [userId, reference],
    );
    const was = first.rows[0] ? Number(first.rows[0].amount) : null;
    if (was !== amountCents)
      throw conflict("reference_reused", `top-up reference ${JSON.stringify(reference)} already credited ${was} cents, not ${amountCents}`);
  }
  if (credited) {
    const settle = Math.min(w.debtCents, amountCents);
    if (settle > 0) await post(tx, userId, "debt_settlement", { balance: -settle, debt: -settle }, { reference });
  }
  return { credited, wallet: (await wallet(tx, userId))! };
}

/** Sum of all ledger entries of a user, for checking the invariant. */
export async function ledgerSums(db: Q, userId: string): Promise<{ balance: number; held: number; debt: number }> {
  const r = await db.query<{ balance: number; held: number; debt: number }>(
    `SELECT coalesce(sum(balance_delta), 0)::bigint AS balance, coalesce(sum(held_delta), 0)::bigint AS held,
            coalesce(sum(debt_delta), 0)::bigint AS debt FROM wallet_ledger WHERE user_id = $1::text`,
    [userId],
  );
  return r.rows[0]!;
}
