import type { Db, Tx } from "./db.ts";
import { conflict, notFound, paymentRequired } from "./errors.ts";

type Q = Db | Tx;

export interface Wallet {
  userId: string;
  balanceCents: number;
  heldCents: number;
  creditLimitCents: number;
  debtCents: number;
}

export type Kind =
  | "topup"
  | "hold"
  | "release"
  | "capture"
  | "debt"
  | "debt_settlement"
  | "payment"
  | "refund"
  | "withdrawal"
  | "withdrawal_reversal";
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

/**
 * ensureUser and lockWallet in one statement (the charge request's path): the user's wallet,
 * created with no credit if the platform has not seen the user, locked for the rest of the
 * transaction. A user created by another transaction after this statement's snapshot is neither
 * inserted nor seen by it: then lockWallet, in a statement of its own, reads it.
 */
export async function ensureAndLockWallet(tx: Tx, userId: string): Promise<Wallet> {
  const r = await tx.query<Wallet>(
    `WITH created AS (INSERT INTO users (user_id) VALUES ($1::text) ON CONFLICT DO NOTHING RETURNING ${walletCols}),
          found AS (SELECT ${walletCols} FROM users WHERE user_id = $1::text FOR UPDATE)
     SELECT * FROM created UNION ALL SELECT * FROM found`,
    [userId],
  );
  return r.rows[0] ?? lockWallet(tx, userId);
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

/**
 * A provider payment credited to the wallet, once per reference (`pay:<provider>:<transactionId>`):
 * like a top-up, it settles postpaid debt first and the rest reaches the balance. False when the
 * reference was credited before (nothing changed).
 */
export async function creditPayment(tx: Tx, userId: string, amountCents: number, reference: string): Promise<boolean> {
  const w = await lockWallet(tx, userId);
  const credited = await post(tx, userId, "payment", { balance: amountCents }, { reference });
  const settle = Math.min(w.debtCents, amountCents);
  if (credited && settle > 0) await post(tx, userId, "debt_settlement", { balance: -settle, debt: -settle }, { reference });
  return credited;
}

/**
 * Pays postpaid debt from the wallet's available balance (balance − held): at most `amountCents`
 * (all the debt when absent), once per reference. Returns the cents settled now, or null when the
 * reference was used before (then the cents it settled are in the ledger).
 */
export async function payDebtFromBalance(tx: Tx, userId: string, amountCents: number | undefined, reference: string): Promise<{ settledCents: number; repeat: boolean }> {
  const w = await lockWallet(tx, userId);
  const before = await tx.query<{ amount: number }>(
    "SELECT -debt_delta AS amount FROM wallet_ledger WHERE user_id = $1::text AND kind = 'debt_settlement' AND reference = $2::text",
    [userId, reference],
  );
  if (before.rows[0]) return { settledCents: before.rows[0].amount, repeat: true };
  if (w.debtCents === 0) throw conflict("no_debt", "there is no postpaid debt to pay");
  const want = Math.min(amountCents ?? w.debtCents, w.debtCents);
  const available = w.balanceCents - w.heldCents;
  if (available < want) throw paymentRequired("insufficient_balance", `paying ${want} cents of debt needs that much available balance; ${available} available`);
  await post(tx, userId, "debt_settlement", { balance: -want, debt: -want }, { reference });
  return { settledCents: want, repeat: false };
}

/**
 * Every user whose cached figures differ from the sum of their ledger entries (the invariant the
 * tests check after every kind of movement): empty when the ledger is whole.
 */
export async function ledgerMismatches(db: Q): Promise<{ userId: string; cached: { balance: number; held: number; debt: number }; ledger: { balance: number; held: number; debt: number } }[]> {
  const r = await db.query<{ user_id: string; cb: number; ch: number; cd: number; lb: number; lh: number; ld: number }>(
    `SELECT u.user_id, u.balance_cents AS cb, u.held_cents AS ch, u.debt_cents AS cd,
            coalesce(l.b, 0)::bigint AS lb, coalesce(l.h, 0)::bigint AS lh, coalesce(l.d, 0)::bigint AS ld
     FROM users u LEFT JOIN (SELECT user_id, sum(balance_delta) AS b, sum(held_delta) AS h, sum(debt_delta) AS d FROM wallet_ledger GROUP BY user_id) l USING (user_id)
     WHERE u.balance_cents <> coalesce(l.b, 0) OR u.held_cents <> coalesce(l.h, 0) OR u.debt_cents <> coalesce(l.d, 0)`,
  );
  return r.rows.map((x) => ({ userId: x.user_id, cached: { balance: x.cb, held: x.ch, debt: x.cd }, ledger: { balance: x.lb, held: x.lh, debt: x.ld } }));
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
