import { randomUUID } from "node:crypto";
import type { FaultEvent, Subjects } from "../../contracts/index.ts";
import type { Db, Tx } from "../db.ts";
import type { Outgoing } from "../outbox.ts";

type Q = Db | Tx;

interface FaultRow extends FaultEvent {
  acknowledgedAt: number | null;
  lastSeenAt: number;
}

/**
 * The protocol's fault event, field by field, as SQL over a `faults` row: the one definition of the
 * event. The reads select it (`cols`, then `toEvent`), and a change builds the franchisee's event
 * from it in the statement that stores the change (`changeAnnounced`).
 */
const EVENT_FIELDS = {
  faultId: "fault_id",
  kind: "kind",
  status: "status",
  terminalId: "terminal_id",
  franchiseeId: "franchisee_id",
  regionId: "region_id",
  openedAt: "vv_ts_to_ms(opened_at)",
  resolvedAt: "vv_ts_to_ms(resolved_at)",
  count: "count",
  evidence: "evidence",
  acknowledgedAt: "vv_ts_to_ms(acknowledged_at)",
} as const satisfies Record<keyof FaultEvent | "acknowledgedAt", string>;

const cols = [...Object.entries(EVENT_FIELDS), ["lastSeenAt", "vv_ts_to_ms(last_seen_at)"]].map(([k, e]) => `${e} AS "${k}"`).join(", ");

/**
 * Evidence that only admins see: who reported a scan failure. Every channel a franchisee reads
 * (its API, event stream, NATS subject, webhook, package) carries the franchisee's view.
 */
const ADMIN_ONLY_EVIDENCE = ["userId"] as const;

const franchiseeEvidence = (e: Record<string, unknown>): Record<string, unknown> => {
  if (!ADMIN_ONLY_EVIDENCE.some((k) => k in e)) return e;
  const out = { ...e };
  for (const k of ADMIN_ONLY_EVIDENCE) delete out[k];
  return out;
};

/** The protocol's fault event as its franchisee sees it (plus `acknowledgedAt`, an extension). */
export function toEvent(r: FaultRow): FaultEvent & { acknowledgedAt: number | null } {
  return { ...toAdminEvent(r), evidence: franchiseeEvidence(r.evidence) };
}

/** The whole fault event, reporter included: for admins only. */
export function toAdminEvent(r: FaultRow): FaultEvent & { acknowledgedAt: number | null } {
  return {
    faultId: r.faultId,
    kind: r.kind,
    status: r.status,
    terminalId: r.terminalId,
    franchiseeId: r.franchiseeId,
    regionId: r.regionId,
    openedAt: Number(r.openedAt),
    resolvedAt: r.resolvedAt === null ? null : Number(r.resolvedAt),
    count: r.count,
    evidence: r.evidence,
    acknowledgedAt: r.acknowledgedAt === null ? null : Number(r.acknowledgedAt),
  };
}

/**
 * A fault event read back from the faults stream, as its franchisee may see it (events published
 * before the reporter was kept from franchisees still carry it in the stream).
 */
export function franchiseeView(data: Uint8Array): string {
  const text = new TextDecoder().decode(data);
  try {
    const ev = JSON.parse(text) as { evidence?: unknown };
    if (!ev.evidence || typeof ev.evidence !== "object") return text;
    return JSON.stringify({ ...ev, evidence: franchiseeEvidence(ev.evidence as Record<string, unknown>) });
  } catch {
    return text;
  }
}

/** Messages to publish once the transaction commits; the caller passes it to publishNow. */
export type Out = Outgoing[];

/** The message id of a fault change: one per fault, status and count, so a redelivery is deduplicated. */
const MSG_ID_SQL = `'fault:' || fault_id || ':' || status || ':' || count`;

/**
 * A change of the `faults` table (an INSERT or UPDATE of one row, without RETURNING) and its
 * announcement as one statement: the franchisee's event into the outbox (on its subject, made by
 * `Subjects.fault`) and, if the franchisee has a webhook, a delivery, all committed with the change.
 * One round trip: this is on the fault's way to the franchisee. Parameters after the change's own:
 * the subject as a format() template, then the evidence keys that only admins see.
 */
async function changeAnnounced(q: Q, s: Subjects, change: string, params: unknown[], out: Out): Promise<FaultRow | null> {
  const n = params.length;
  const event = `jsonb_build_object(${Object.entries(EVENT_FIELDS)
    .map(([k, e]) => `'${k}', ${k === "evidence" ? `${e} - $${n + 2}::text[]` : e}`)
    .join(", ")})`;
  const r = await q.query<FaultRow & { outboxId: string; subject: string; msgId: string; payload: unknown }>(
    `WITH f AS (${change} RETURNING *),
     ev AS (SELECT f.*, format($${n + 1}::text, franchisee_id, terminal_id) AS subject, ${MSG_ID_SQL} AS msg_id, ${event} AS payload FROM f),
     hook AS (
       INSERT INTO webhook_deliveries (franchisee_id, body, next_at)
       SELECT ev.franchisee_id, ev.payload, now() FROM ev JOIN franchisee_webhooks h ON h.franchisee_id = ev.franchisee_id
     ),
     ob AS (INSERT INTO outbox (subject, msg_id, payload) SELECT subject, msg_id, payload FROM ev RETURNING id AS outbox_id)
     SELECT ${cols}, ob.outbox_id AS "outboxId", ev.subject, ev.msg_id AS "msgId", ev.payload FROM ev, ob`,
    [...params, s.fault("%1$s", "%2$s"), ADMIN_ONLY_EVIDENCE],
  );
  const row = r.rows[0];
  if (!row) return null;
  const { outboxId, subject, msgId, payload, ...fault } = row;
  out.push({ id: Number(outboxId), subject, msgId, payload });
  return fault;
}

/**
 * Opens a fault of a kind on a terminal, or, when one is already unresolved, counts a repeat
 * (the partial unique index makes the two one statement). The franchisee and region are the
 * terminal's now. $1 terminal, $2 kind, $3 at (ms), $4 a new fault id, $5 evidence.
 */
const OPEN_OR_REPEAT = `INSERT INTO faults (fault_id, kind, terminal_id, franchisee_id, region_id, status, evidence, opened_at, last_seen_at)
  SELECT $4::text, $2::text, t.terminal_id, t.franchisee_id, t.region_id, 'open', $5::jsonb, vv_ms_to_ts($3::bigint), vv_ms_to_ts($3::bigint)
  FROM terminals t WHERE t.terminal_id = $1::text
  ON CONFLICT (terminal_id, kind) WHERE status <> 'resolved'
  DO UPDATE SET count = faults.count + 1, evidence = EXCLUDED.evidence, last_seen_at = EXCLUDED.last_seen_at, updated_at = now()`;
const openParams = (o: { terminalId: string; kind: string; at: number; evidence?: Record<string, unknown> | undefined }) => [
  o.terminalId,
  o.kind,
  o.at,
  `F-${randomUUID()}`,
  JSON.stringify(o.evidence ?? {}),
];

/** Resolves the unresolved fault of a kind on a terminal: $1 terminal, $2 kind, $3 at (ms). */
const RESOLVE = `UPDATE faults SET status = 'resolved', resolved_at = vv_ms_to_ts($3::bigint), updated_at = now()
  WHERE terminal_id = $1::text AND kind = $2::text AND status <> 'resolved'`;

export async function openOrRepeat(tx: Tx, s: Subjects, o: { terminalId: string; kind: string; at: number; evidence: Record<string, unknown> }, out: Out): Promise<FaultRow | null> {
  return changeAnnounced(tx, s, OPEN_OR_REPEAT, openParams(o), out);
}

export async function resolve(tx: Tx, s: Subjects, o: { terminalId: string; kind: string; at: number }, out: Out): Promise<FaultRow | null> {
  return changeAnnounced(tx, s, RESOLVE, [o.terminalId, o.kind, o.at], out);
}

/** Acknowledges an open fault of the franchisee's; null when there is no such fault of theirs. */
export async function acknowledge(tx: Tx, s: Subjects, o: { faultId: string; franchiseeId: string; at: number }, out: Out): Promise<FaultRow | null> {
  return changeAnnounced(
    tx,
    s,
    `UPDATE faults SET status = 'acknowledged', acknowledged_at = vv_ms_to_ts($3::bigint), acknowledged_by = $2::text, updated_at = now()
     WHERE fault_id = $1::text AND franchisee_id = $2::text AND status = 'open'`,
    [o.faultId, o.franchiseeId, o.at],
    out,
  );
}

/**
 * Closes an unresolved fault of the franchisee's by hand (resolved now, with who and why); null
 * when there is no such unresolved fault of theirs. If the condition is still there, the fault
 * processor opens a new fault for it (a person's word does not change a reading).
 */
/**
 * Whether an unresolved fault is a safety fault, its row locked until the transaction ends (a
 * repeat, which could make an over-current's evidence a safety one, waits for it).
 */
export async function lockedSafetyFault(tx: Tx, faultId: string): Promise<boolean> {
  const r = await tx.query<{ safety: boolean }>(`SELECT (${SAFETY_FAULT}) AS safety FROM faults WHERE fault_id = $1::text FOR UPDATE`, [faultId]);
  return r.rows[0]?.safety === true;
}

export async function closeByHand(tx: Tx, s: Subjects, o: { faultId: string; franchiseeId: string; note: string; at: number }, out: Out): Promise<FaultRow | null> {
  return changeAnnounced(
    tx,
    s,
    `UPDATE faults SET status = 'resolved', resolved_at = vv_ms_to_ts($3::bigint), closed_by = $2::text, close_note = $4::text, updated_at = now()
     WHERE fault_id = $1::text AND franchisee_id = $2::text AND status <> 'resolved'`,
    [o.faultId, o.franchiseeId, o.at, o.note],
    out,
  );
}

export async function faultById(q: Q, faultId: string): Promise<FaultRow | null> {
  const r = await q.query<FaultRow>(`SELECT ${cols} FROM faults WHERE fault_id = $1::text`, [faultId]);
  return r.rows[0] ?? null;
}

export async function faultsOf(q: Q, franchiseeId: string, statuses: string[] | null, limit: number): Promise<FaultRow[]> {
  const r = await q.query<FaultRow>(
    `SELECT ${cols} FROM faults WHERE franchisee_id = $1::text AND ($2::text[] IS NULL OR status = ANY($2::text[]))
     ORDER BY opened_at DESC LIMIT $3::int`,
    [franchiseeId, statuses, limit],
  );
  return r.rows;
}

export async function unresolvedOfTerminals(q: Q, terminalIds: string[]): Promise<FaultRow[]> {
  const r = await q.query<FaultRow>(`SELECT ${cols} FROM faults WHERE terminal_id = ANY($1::text[]) AND status <> 'resolved' ORDER BY opened_at`, [terminalIds]);
  return r.rows;
}

/**
 * An open safety fault, as a condition on a `faults` row (columns unqualified): a leak, or current
 * above its range (current below the range is a fault for the franchisee, not a danger). New
 * sessions are refused on a terminal with one.
 */
export const SAFETY_FAULT = `status <> 'resolved'
       AND (kind = 'off_current_leak'
            OR (kind = 'on_current_out_of_range' AND (evidence ->> 'currentA')::float8 > (evidence -> 'rangeA' ->> 1)::float8))`;

/** Whether the terminal has an open safety fault (SAFETY_FAULT). */
export async function hasSafetyFault(q: Q, terminalId: string): Promise<boolean> {
  const r = await q.query(`SELECT 1 FROM faults WHERE terminal_id = $1::text AND ${SAFETY_FAULT} LIMIT 1`, [terminalId]);
  return (r.rowCount ?? 0) > 0;
}

/**
 * A user's report that a QR code did not scan. Reports within `windowMs` of the last one add to
 * the open scan_failure fault's count; later ones open a new fault after the old resolves.
 */
export async function reportScanFailure(
  tx: Tx,
  s: Subjects,
  o: { terminalId: string; at: number; reason: string; userId: string; windowMs: number },
  out: Out,
): Promise<FaultRow | null> {
  // A stale open report (no report for a whole window) is resolved first: a new episode begins.
  const stale = await tx.query(
    `SELECT 1 FROM faults WHERE terminal_id = $1::text AND kind = 'scan_failure' AND status <> 'resolved'
       AND last_seen_at < vv_ms_to_ts($2::bigint - $3::bigint)`,
    [o.terminalId, o.at, o.windowMs],
  );
  if (stale.rowCount) await resolve(tx, s, { terminalId: o.terminalId, kind: "scan_failure", at: o.at }, out);
  return openOrRepeat(tx, s, { terminalId: o.terminalId, kind: "scan_failure", at: o.at, evidence: { reason: o.reason, userId: o.userId } }, out);
}

/** The franchisee's faults opened in [from, to), oldest first. */
export async function faultsOpenedIn(q: Q, franchiseeId: string, from: number, to: number): Promise<ReturnType<typeof toEvent>[]> {
  const r = await q.query<FaultRow>(
    `SELECT ${cols} FROM faults WHERE franchisee_id = $1::text AND opened_at >= vv_ms_to_ts($2::bigint) AND opened_at < vv_ms_to_ts($3::bigint)
     ORDER BY opened_at, fault_id`,
    [franchiseeId, from, to],
  );
  return r.rows.map(toEvent);
}

/**
 * The processor's change as one statement: the fault opened, repeated or resolved, its event into
 * the outbox and, if the franchisee has a webhook, a delivery, all committed together (a statement
 * is its own transaction) in one round trip instead of five.
 */
export async function applyChange(q: Q, s: Subjects, c: { terminalId: string; kind: string; change: "open" | "repeat" | "resolve"; at: number; evidence?: Record<string, unknown> | undefined }): Promise<Outgoing[]> {
  const out: Out = [];
  if (c.change === "resolve") await changeAnnounced(q, s, RESOLVE, [c.terminalId, c.kind, c.at], out);
  else await changeAnnounced(q, s, OPEN_OR_REPEAT, openParams(c), out);
  return out;
}
