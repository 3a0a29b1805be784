import type { Session, SessionState, SessionStopReason, Target } from "../../contracts/index.ts";
import type { Db, Tx } from "../db.ts";
import { notFound } from "../errors.ts";
import { toVersion, versionSql, type TariffVersion } from "../tariffs.ts";

type Q = Db | Tx;

export interface SessionRow {
  sessionId: string;
  userId: string;
  terminalId: string;
  gatewayId: string;
  regionId: string;
  franchiseeId: string;
  state: SessionState;
  handshakeOk: boolean;
  target: Target;
  payment: "prepaid" | "postpaid";
  tariffVersion: number;
  heldCents: number;
  capCents: number;
  startMwh: number | null;
  endMwh: number | null;
  energyMwh: number;
  durationMs: number;
  feeCents: number;
  stopReason: SessionStopReason | null;
  createdAt: number;
  startedAt: number | null;
  stopRequestedAt: number | null;
  endedAt: number | null;
}

const cols = `session_id AS "sessionId", user_id AS "userId", terminal_id AS "terminalId", gateway_id AS "gatewayId",
  region_id AS "regionId", franchisee_id AS "franchiseeId", state, handshake_ok AS "handshakeOk", target, payment,
  tariff_version AS "tariffVersion", held_cents AS "heldCents", cap_cents AS "capCents", start_mwh AS "startMwh",
  end_mwh AS "endMwh", energy_mwh AS "energyMwh", duration_ms AS "durationMs", fee_cents AS "feeCents",
  stop_reason AS "stopReason", vv_ts_to_ms(created_at) AS "createdAt", vv_ts_to_ms(started_at) AS "startedAt",
  vv_ts_to_ms(stop_requested_at) AS "stopRequestedAt", vv_ts_to_ms(ended_at) AS "endedAt"`;

export async function insertSession(
  tx: Tx,
  s: Pick<SessionRow, "sessionId" | "userId" | "terminalId" | "gatewayId" | "regionId" | "franchiseeId" | "target" | "payment" | "tariffVersion" | "heldCents" | "capCents" | "createdAt">,
): Promise<SessionRow> {
  const r = await tx.query<SessionRow>(
    `INSERT INTO sessions (session_id, user_id, terminal_id, gateway_id, region_id, franchisee_id, state, target, payment,
       tariff_version, held_cents, cap_cents, created_at)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, 'authorizing', $7::jsonb, $8::text,
       $9::int, $10::bigint, $11::bigint, vv_ms_to_ts($12::bigint))
     RETURNING ${cols}`,
    [s.sessionId, s.userId, s.terminalId, s.gatewayId, s.regionId, s.franchiseeId, JSON.stringify(s.target), s.payment,
      s.tariffVersion, s.heldCents, s.capCents, s.createdAt],
  );
  return r.rows[0]!;
}

export async function sessionById(db: Q, sessionId: string, lock = false): Promise<SessionRow | null> {
  const r = await db.query<SessionRow>(`SELECT ${cols} FROM sessions WHERE session_id = $1::text${lock ? " FOR UPDATE" : ""}`, [sessionId]);
  return r.rows[0] ?? null;
}

/**
 * The session with its tariff version in one round trip (locked: the session's row only), for the
 * transitions that bill, arm or limit a session by its tariff; null when there is no such session.
 */
export async function sessionWithTariff(db: Q, sessionId: string, lock = false): Promise<{ row: SessionRow; tariff: TariffVersion } | null> {
  const r = await db.query<SessionRow & { tariff: Record<string, unknown> | null }>(
    `SELECT ${cols}, (SELECT to_jsonb(v) FROM (${versionSql("sessions.region_id", "sessions.tariff_version")}) v) AS tariff
     FROM sessions WHERE session_id = $1::text${lock ? " FOR UPDATE" : ""}`,
    [sessionId],
  );
  const found = r.rows[0];
  if (!found) return null;
  const { tariff, ...row } = found;
  if (!tariff) throw notFound("tariff", `${row.regionId} v${row.tariffVersion}`);
  return { row, tariff: toVersion(tariff) };
}

export async function liveSessionOfTerminal(db: Q, terminalId: string): Promise<SessionRow | null> {
  const r = await db.query<SessionRow>(
    `SELECT ${cols} FROM sessions WHERE terminal_id = $1::text AND state IN ('authorizing', 'active', 'stopping')`,
    [terminalId],
  );
  return r.rows[0] ?? null;
}

/** Credit reserved by the user's other live postpaid sessions. */
export async function reservedCredit(tx: Tx, userId: string): Promise<number> {
  const r = await tx.query<{ sum: number }>(
    `SELECT coalesce(sum(cap_cents), 0)::bigint AS sum FROM sessions
     WHERE user_id = $1::text AND payment = 'postpaid' AND state IN ('authorizing', 'active', 'stopping')`,
    [userId],
  );
  return r.rows[0]!.sum;
}

export interface SessionPatch {
  state?: SessionState;
  handshakeOk?: boolean;
  stopReason?: SessionStopReason | null;
  startedAt?: number | null;
  startMwh?: number;
  stopRequestedAt?: number;
  endedAt?: number;
  energyMwh?: number;
  endMwh?: number;
  durationMs?: number;
  feeCents?: number;
  meter?: unknown;
}

/** Applies a patch; absent fields keep their values. */
export async function updateSession(tx: Tx, sessionId: string, p: SessionPatch): Promise<SessionRow> {
  const r = await tx.query<SessionRow>(
    `UPDATE sessions SET
       state = coalesce($2::text, state),
       handshake_ok = coalesce($3::boolean, handshake_ok),
       stop_reason = coalesce($4::text, stop_reason),
       started_at = coalesce(vv_ms_to_ts($5::bigint), started_at),
       start_mwh = coalesce($6::bigint, start_mwh),
       stop_requested_at = coalesce(vv_ms_to_ts($7::bigint), stop_requested_at),
       ended_at = coalesce(vv_ms_to_ts($8::bigint), ended_at),
       energy_mwh = coalesce($9::bigint, energy_mwh),
       end_mwh = coalesce($10::bigint, end_mwh),
       duration_ms = coalesce($11::bigint, duration_ms),
       fee_cents = coalesce($12::bigint, fee_cents),
       meter = coalesce($13::jsonb, meter),
       updated_at = now()
     WHERE session_id = $1::text
     RETURNING ${cols}`,
    [sessionId, p.state ?? null, p.handshakeOk ?? null, p.stopReason ?? null, p.startedAt ?? null, p.startMwh ?? null,
      p.stopRequestedAt ?? null, p.endedAt ?? null, p.energyMwh ?? null, p.endMwh ?? null, p.durationMs ?? null,
      p.feeCents ?? null, p.meter === undefined ? null : JSON.stringify(p.meter)],
  );
  return r.rows[0]!;
}

/** The protocol's view of a session; live figures (energy, fee) may be overlaid by the caller. */
export function toApi(s: SessionRow, live?: { energyWh: number; durationS: number; feeCents: number }): Session {
  return {
    sessionId: s.sessionId,
    userId: s.userId,
    terminalId: s.terminalId,
    state: s.state,
    target: s.target,
    payment: s.payment,
    energyWh: live?.energyWh ?? s.energyMwh / 1000,
    durationS: live?.durationS ?? Math.floor(s.durationMs / 1000),
    feeCents: live?.feeCents ?? s.feeCents,
    heldCents: s.heldCents,
    stopReason: s.stopReason,
    createdAt: s.createdAt,
    startedAt: s.startedAt,
    endedAt: s.endedAt,
    tariffVersion: s.tariffVersion,
  };
}

/**
 * The machine's `active + stop` transition (to stopping, with a power_off command) as one
 * statement, for the cutoff path where every round trip is latency: the session moves only if it
 * is still active on that terminal, and the command is recorded with it, atomically.
 */
export async function stopActive(
  db: Q,
  o: { sessionId: string; terminalId: string; reason: string; cmdId: string; payload: unknown; now: number; retryMs: number; timeoutMs: number },
): Promise<SessionRow | null> {
  const r = await db.query<SessionRow>(
    `WITH s AS (
       UPDATE sessions SET state = 'stopping', stop_reason = $3::text, stop_requested_at = vv_ms_to_ts($6::bigint), updated_at = now()
       WHERE session_id = $1::text AND terminal_id = $2::text AND state = 'active'
       RETURNING *),
     c AS (
       INSERT INTO commands (cmd_id, session_id, terminal_id, gateway_id, type, payload, created_at, next_at, deadline_at)
       SELECT $4::text, s.session_id, s.terminal_id, s.gateway_id, 'power_off', $5::jsonb, vv_ms_to_ts($6::bigint),
              vv_ms_to_ts($6::bigint + $7::bigint), vv_ms_to_ts($6::bigint + $8::bigint)
       FROM s)
     SELECT ${cols} FROM s`,
    [o.sessionId, o.terminalId, o.reason, o.cmdId, JSON.stringify(o.payload), o.now, o.retryMs, o.timeoutMs],
  );
  return r.rows[0] ?? null;
}

/** Sessions whose power is on (active, or stopping until the terminal confirms): the ones to arm. */
export async function poweredSessions(db: Q): Promise<{ sessionId: string; terminalId: string }[]> {
  const r = await db.query<{ sessionId: string; terminalId: string }>(
    `SELECT session_id AS "sessionId", terminal_id AS "terminalId" FROM sessions WHERE state IN ('active', 'stopping')`,
  );
  return r.rows;
}

/**
 * The session under its row lock, unless another transaction holds it: "locked" then (it is
 * being moved, and that transaction looks after its arm), null when there is no such session.
 */
export async function sessionIfFree(tx: Tx, sessionId: string): Promise<SessionRow | "locked" | null> {
  const r = await tx.query<SessionRow>(`SELECT ${cols} FROM sessions WHERE session_id = $1::text FOR UPDATE SKIP LOCKED`, [sessionId]);
  if (r.rows[0]) return r.rows[0];
  const exists = await tx.query("SELECT 1 FROM sessions WHERE session_id = $1::text", [sessionId]);
  return exists.rowCount ? "locked" : null;
}

/**
 * A user's sessions, newest first, a page at a time: `after` is the last (createdAt, sessionId)
 * of the previous page (keyset pagination on the sessions_user index, stable while sessions are added).
 */
export async function sessionsOfUser(db: Q, userId: string, limit: number, after: { createdAt: number; sessionId: string } | null): Promise<SessionRow[]> {
  const r = await db.query<SessionRow>(
    `SELECT ${cols} FROM sessions WHERE user_id = $1::text
       AND ($2::bigint IS NULL OR (created_at, session_id) < (vv_ms_to_ts($2::bigint), $3::text))
     ORDER BY created_at DESC, session_id DESC LIMIT $4::int`,
    [userId, after?.createdAt ?? null, after?.sessionId ?? "", limit],
  );
  return r.rows;
}

/** The per-period usage the session's fee was computed from (null before it ends, or when it was never powered). */
export async function meterOfSession(db: Q, sessionId: string): Promise<unknown> {
  const r = await db.query<{ meter: unknown }>("SELECT meter FROM sessions WHERE session_id = $1::text", [sessionId]);
  return r.rows[0]?.meter ?? null;
}

/** The session's own ledger entries (hold, release, capture, debt; refunds are listed apart). */
export async function ledgerOfSession(db: Q, sessionId: string): Promise<{ kind: string; balance: number; held: number; debt: number }[]> {
  const r = await db.query<{ kind: string; balance: number; held: number; debt: number }>(
    `SELECT kind, balance_delta AS balance, held_delta AS held, debt_delta AS debt FROM wallet_ledger
     WHERE session_id = $1::text AND kind IN ('hold', 'release', 'capture', 'debt') ORDER BY entry_id`,
    [sessionId],
  );
  return r.rows;
}

/**
 * The completed sessions of a franchisee that ended in [from, to), with their meters: what the
 * monthly statement sums (each as its receipt does).
 */
export async function endedSessionsOfFranchisee(db: Q, franchiseeId: string, from: number, to: number): Promise<(SessionRow & { meter: unknown })[]> {
  const r = await db.query<SessionRow & { meter: unknown }>(
    `SELECT ${cols}, meter FROM sessions WHERE franchisee_id = $1::text AND state = 'completed'
       AND ended_at >= vv_ms_to_ts($2::bigint) AND ended_at < vv_ms_to_ts($3::bigint)
     ORDER BY terminal_id, ended_at, session_id`,
    [franchiseeId, from, to],
  );
  return r.rows;
}
