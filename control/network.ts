import type { z } from "zod";
import type { adminFaultSchema, adminSessionSchema } from "../contracts/index.ts";
import { decodeCursor, pageOf, type Page } from "./cursor.ts";
import type { Db, Tx } from "./db.ts";

/**
 * Sessions and faults across the whole network, for admins: newest first (by when each began),
 * filtered, a page at a time. The cursor is the last row's (start time, id), so rows that arrive
 * while one pages through never shift a page.
 */

type Q = Db | Tx;
export type AdminSession = z.infer<typeof adminSessionSchema>;
export type AdminFault = z.infer<typeof adminFaultSchema>;

interface Common {
  /** Epoch ms on when each began: from inclusive, to exclusive. */
  from?: number | undefined;
  to?: number | undefined;
  regionId?: string | undefined;
  franchiseeId?: string | undefined;
  terminalId?: string | undefined;
  userId?: string | undefined;
  state?: string[] | undefined;
  cursor?: string | undefined;
  limit: number;
}

const ms = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const cursorOf = (c: string | undefined) => (c ? (decodeCursor(c, ["n", "s"]) as [number, string]) : [null, null]);

export async function listSessions(db: Q, f: Common & { stopReason?: string[] | undefined }): Promise<Page<AdminSession>> {
  const [atMs, id] = cursorOf(f.cursor);
  const r = await db.query(
    `SELECT session_id, user_id, terminal_id, gateway_id, region_id, franchisee_id, state, payment, energy_mwh, duration_ms, fee_cents,
            held_cents, stop_reason, tariff_version, vv_ts_to_ms(created_at) AS created_at, vv_ts_to_ms(started_at) AS started_at,
            vv_ts_to_ms(ended_at) AS ended_at
       FROM sessions
      WHERE ($1::bigint IS NULL OR created_at >= vv_ms_to_ts($1::bigint)) AND ($2::bigint IS NULL OR created_at < vv_ms_to_ts($2::bigint))
        AND ($3::text IS NULL OR region_id = $3::text) AND ($4::text IS NULL OR franchisee_id = $4::text)
        AND ($5::text IS NULL OR terminal_id = $5::text) AND ($6::text IS NULL OR user_id = $6::text)
        AND ($7::text[] IS NULL OR state = ANY($7::text[])) AND ($8::text[] IS NULL OR stop_reason = ANY($8::text[]))
        AND ($9::bigint IS NULL OR (created_at, session_id) < (vv_ms_to_ts($9::bigint), $10::text))
      ORDER BY created_at DESC, session_id DESC LIMIT $11::int`,
    [f.from ?? null, f.to ?? null, f.regionId ?? null, f.franchiseeId ?? null, f.terminalId ?? null, f.userId ?? null, f.state ?? null, f.stopReason ?? null, atMs, id, f.limit + 1],
  );
  return pageOf(
    r.rows,
    f.limit,
    (x) => [Number(x.created_at), x.session_id as string],
    (x): AdminSession => ({
      sessionId: x.session_id,
      userId: x.user_id,
      terminalId: x.terminal_id,
      gatewayId: x.gateway_id,
      regionId: x.region_id,
      franchiseeId: x.franchisee_id,
      state: x.state,
      payment: x.payment,
      energyWh: Number(x.energy_mwh) / 1000,
      durationS: Math.floor(Number(x.duration_ms) / 1000),
      feeCents: Number(x.fee_cents),
      heldCents: Number(x.held_cents),
      stopReason: x.stop_reason,
      tariffVersion: Number(x.tariff_version),
      createdAt: Number(x.created_at),
      startedAt: ms(x.started_at),
      endedAt: ms(x.ended_at),
    }),
  );
}

/** userId: the user who reported a scan failure (only admins see it). */
export async function listFaults(db: Q, f: Common & { kind?: string | undefined }): Promise<Page<AdminFault>> {
  const [atMs, id] = cursorOf(f.cursor);
  const r = await db.query(
    `SELECT fault_id, kind, status, terminal_id, franchisee_id, region_id, vv_ts_to_ms(opened_at) AS opened_at,
            vv_ts_to_ms(resolved_at) AS resolved_at, vv_ts_to_ms(acknowledged_at) AS acknowledged_at, count, evidence
       FROM faults
      WHERE ($1::bigint IS NULL OR opened_at >= vv_ms_to_ts($1::bigint)) AND ($2::bigint IS NULL OR opened_at < vv_ms_to_ts($2::bigint))
        AND ($3::text IS NULL OR region_id = $3::text) AND ($4::text IS NULL OR franchisee_id = $4::text)
        AND ($5::text IS NULL OR terminal_id = $5::text) AND ($6::text IS NULL OR evidence->>'userId' = $6::text)
        AND ($7::text[] IS NULL OR status = ANY($7::text[])) AND ($8::text IS NULL OR kind = $8::text)
        AND ($9::bigint IS NULL OR (opened_at, fault_id) < (vv_ms_to_ts($9::bigint), $10::text))
      ORDER BY opened_at DESC, fault_id DESC LIMIT $11::int`,
    [f.from ?? null, f.to ?? null, f.regionId ?? null, f.franchiseeId ?? null, f.terminalId ?? null, f.userId ?? null, f.state ?? null, f.kind ?? null, atMs, id, f.limit + 1],
  );
  return pageOf(
    r.rows,
    f.limit,
    (x) => [Number(x.opened_at), x.fault_id as string],
    (x): AdminFault => ({
      faultId: x.fault_id,
      kind: x.kind,
      status: x.status,
      terminalId: x.terminal_id,
      franchiseeId: x.franchisee_id,
      regionId: x.region_id,
      openedAt: Number(x.opened_at),
      resolvedAt: ms(x.resolved_at),
      acknowledgedAt: ms(x.acknowledged_at),
      count: Number(x.count),
      evidence: x.evidence ?? {},
    }),
  );
}
