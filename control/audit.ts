import type { Db, Tx } from "./db.ts";
import { decodeCursor, pageOf, type Page } from "./cursor.ts";

type Q = Db | Tx;

/** Who made a change: the verified token's subject and role. */
export interface Actor {
  sub: string;
  role: string;
}

export interface AuditInput {
  actor: Actor;
  /** What was done, as `<object>.<verb>`: `terminal.put`, `terminal.retire`, `wallet.refund`... */
  action: string;
  objectType: string;
  objectId: string;
  /** The object before the change (null when it did not exist) and after it (null when it ended). */
  before: unknown;
  after: unknown;
  /** A person's reason, when the call takes one (a refund, a fault closed by hand). */
  reason?: string | null | undefined;
  /** Epoch milliseconds: the platform's clock. */
  atMs: number;
}

export interface AuditRecord {
  auditId: number;
  at: number;
  actor: Actor;
  action: string;
  objectType: string;
  objectId: string;
  before: unknown;
  after: unknown;
  reason: string | null;
}

/**
 * Appends one entry. Call it in the transaction of the change it describes (pass the `tx`), so
 * that a change and its entry commit together or not at all. The table refuses UPDATE and DELETE
 * (sql/015_audit.sql).
 */
export async function audit(q: Q, e: AuditInput): Promise<number> {
  const r = await q.query<{ audit_id: number }>(
    `INSERT INTO audit_log (at, actor_sub, actor_role, action, object_type, object_id, before, after, reason)
     VALUES (vv_ms_to_ts($1::bigint), $2::text, $3::text, $4::text, $5::text, $6::text, $7::jsonb, $8::jsonb, $9::text)
     RETURNING audit_id`,
    [e.atMs, e.actor.sub, e.actor.role, e.action, e.objectType, e.objectId, json(e.before), json(e.after), e.reason ?? null],
  );
  return r.rows[0]!.audit_id;
}

const json = (v: unknown) => (v === undefined || v === null ? null : JSON.stringify(v));

export interface AuditFilter {
  objectType?: string | undefined;
  objectId?: string | undefined;
  actor?: string | undefined;
  action?: string | undefined;
  /** Epoch ms, inclusive / exclusive. */
  from?: number | undefined;
  to?: number | undefined;
  cursor?: string | undefined;
  limit: number;
}

/** Entries newest first, one page. */
export async function listAudit(db: Q, f: AuditFilter): Promise<Page<AuditRecord>> {
  const before = f.cursor ? (decodeCursor(f.cursor, ["n"])[0] as number) : null;
  const r = await db.query(
    `SELECT audit_id, vv_ts_to_ms(at) AS at, actor_sub, actor_role, action, object_type, object_id, before, after, reason
       FROM audit_log
      WHERE ($1::text IS NULL OR object_type = $1::text) AND ($2::text IS NULL OR object_id = $2::text)
        AND ($3::text IS NULL OR actor_sub = $3::text) AND ($4::text IS NULL OR action = $4::text)
        AND ($5::bigint IS NULL OR at >= vv_ms_to_ts($5::bigint)) AND ($6::bigint IS NULL OR at < vv_ms_to_ts($6::bigint))
        AND ($7::bigint IS NULL OR audit_id < $7::bigint)
      ORDER BY audit_id DESC LIMIT $8::int`,
    [f.objectType ?? null, f.objectId ?? null, f.actor ?? null, f.action ?? null, f.from ?? null, f.to ?? null, before, f.limit + 1],
  );
  return pageOf(
    r.rows,
    f.limit,
    (row) => [Number(row.audit_id)],
    (row): AuditRecord => ({
      auditId: Number(row.audit_id),
      at: Number(row.at),
      actor: { sub: row.actor_sub, role: row.actor_role },
      action: row.action,
      objectType: row.object_type,
      objectId: row.object_id,
      before: row.before,
      after: row.after,
      reason: row.reason,
    }),
  );
}
