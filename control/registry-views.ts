import type { z } from "zod";
import type { adminUserSchema, franchiseeSchema, gatewaySchema, regionSchema, tariffVersionSchema, terminalSchema } from "../contracts/index.ts";
import { decodeCursor, pageOf, type Page } from "./cursor.ts";
import type { Db, Tx } from "./db.ts";
import { ApiError, conflict, notFound } from "./errors.ts";
import { storedProfile } from "./registry.ts";

/**
 * The registry as admins read it: one object, or a page of a filtered list in id order, and the
 * changes that end or pause an object (retire, maintenance). Nothing is deleted: a retired
 * object keeps its row, and every session, fault and ledger entry that names it.
 */

type Q = Db | Tx;
export type RegionView = z.infer<typeof regionSchema>;
export type FranchiseeView = z.infer<typeof franchiseeSchema>;
export type GatewayView = z.infer<typeof gatewaySchema>;
export type TerminalView = z.infer<typeof terminalSchema>;
export type TariffVersionView = z.infer<typeof tariffVersionSchema>;
export type UserView = z.infer<typeof adminUserSchema>;

export interface ListFilter {
  regionId?: string | undefined;
  franchiseeId?: string | undefined;
  gatewayId?: string | undefined;
  /** active / retired, and for terminals maintenance (a terminal in maintenance is not active). */
  state?: string[] | undefined;
  cursor?: string | undefined;
  limit: number;
}

const ms = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const stamps = `vv_ts_to_ms(x.created_at) AS created_at, vv_ts_to_ms(x.updated_at) AS updated_at, vv_ts_to_ms(x.retired_at) AS retired_at`;
const stampsOf = (r: Record<string, unknown>) => ({ createdAt: Number(r.created_at), updatedAt: Number(r.updated_at), retiredAt: ms(r.retired_at) });
const after = (f: ListFilter) => (f.cursor ? (decodeCursor(f.cursor, ["s"])[0] as string) : null);
/** active / retired as a condition on `x.retired_at` (terminals add maintenance: see terminalState). */
const retiredState = `($1::text[] IS NULL OR (CASE WHEN x.retired_at IS NULL THEN 'active' ELSE 'retired' END) = ANY($1::text[]))`;

const toRegion = (r: Record<string, unknown>): RegionView => ({
  regionId: r.region_id as string,
  name: r.name as string,
  timezone: r.timezone as string,
  capacityKw: r.capacity_kw === null ? null : Number(r.capacity_kw),
  ...stampsOf(r),
});
const regionSelect = `SELECT x.region_id, x.name, x.timezone, x.capacity_kw::text AS capacity_kw, ${stamps} FROM regions x`;

export async function regionView(db: Q, regionId: string): Promise<RegionView | null> {
  const r = await db.query(`${regionSelect} WHERE x.region_id = $1::text`, [regionId]);
  return r.rows[0] ? toRegion(r.rows[0]) : null;
}
export async function listRegions(db: Q, f: ListFilter): Promise<Page<RegionView>> {
  const r = await db.query(`${regionSelect} WHERE ${retiredState} AND ($2::text IS NULL OR x.region_id > $2::text) ORDER BY x.region_id LIMIT $3::int`, [
    f.state ?? null,
    after(f),
    f.limit + 1,
  ]);
  return pageOf(r.rows, f.limit, (x) => [x.region_id as string], toRegion);
}

const toFranchisee = (r: Record<string, unknown>): FranchiseeView => ({ franchiseeId: r.franchisee_id as string, name: r.name as string, ...stampsOf(r) });
const franchiseeSelect = `SELECT x.franchisee_id, x.name, ${stamps} FROM franchisees x`;
export async function franchiseeView(db: Q, franchiseeId: string): Promise<FranchiseeView | null> {
  const r = await db.query(`${franchiseeSelect} WHERE x.franchisee_id = $1::text`, [franchiseeId]);
  return r.rows[0] ? toFranchisee(r.rows[0]) : null;
}
/** regionId: the franchisees with a terminal in that region. */
export async function listFranchisees(db: Q, f: ListFilter): Promise<Page<FranchiseeView>> {
  const r = await db.query(
    `${franchiseeSelect} WHERE ${retiredState} AND ($2::text IS NULL OR x.franchisee_id > $2::text)
       AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM terminals t WHERE t.franchisee_id = x.franchisee_id AND t.region_id = $4::text))
     ORDER BY x.franchisee_id LIMIT $3::int`,
    [f.state ?? null, after(f), f.limit + 1, f.regionId ?? null],
  );
  return pageOf(r.rows, f.limit, (x) => [x.franchisee_id as string], toFranchisee);
}

const toGateway = (r: Record<string, unknown>): GatewayView => ({ gatewayId: r.gateway_id as string, regionId: r.region_id as string, ...stampsOf(r) });
const gatewaySelect = `SELECT x.gateway_id, x.region_id, ${stamps} FROM gateways x`;
export async function gatewayView(db: Q, gatewayId: string): Promise<GatewayView | null> {
  const r = await db.query(`${gatewaySelect} WHERE x.gateway_id = $1::text`, [gatewayId]);
  return r.rows[0] ? toGateway(r.rows[0]) : null;
}
/** franchiseeId: the gateways that carry a terminal of that franchisee. */
export async function listGateways(db: Q, f: ListFilter): Promise<Page<GatewayView>> {
  const r = await db.query(
    `${gatewaySelect} WHERE ${retiredState} AND ($2::text IS NULL OR x.gateway_id > $2::text) AND ($4::text IS NULL OR x.region_id = $4::text)
       AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM terminals t WHERE t.gateway_id = x.gateway_id AND t.franchisee_id = $5::text))
     ORDER BY x.gateway_id LIMIT $3::int`,
    [f.state ?? null, after(f), f.limit + 1, f.regionId ?? null, f.franchiseeId ?? null],
  );
  return pageOf(r.rows, f.limit, (x) => [x.gateway_id as string], toGateway);
}

const terminalState = `CASE WHEN x.retired_at IS NOT NULL THEN 'retired' WHEN x.maintenance_reason IS NOT NULL THEN 'maintenance' ELSE 'active' END`;
const toTerminalView = (r: Record<string, unknown>): TerminalView => ({
  terminalId: r.terminal_id as string,
  qr: r.qr as string,
  gatewayId: r.gateway_id as string,
  regionId: r.region_id as string,
  franchiseeId: r.franchisee_id as string,
  profile: storedProfile(r.profile),
  location: r.latitude === null ? null : { latitude: Number(r.latitude), longitude: Number(r.longitude), address: (r.address as string | null) ?? null },
  status: r.status as TerminalView["status"],
  maintenance: r.maintenance_reason === null ? null : { reason: r.maintenance_reason as string, since: Number(r.maintenance_since), expectedReturnAt: ms(r.maintenance_until) },
  ...stampsOf(r),
});
const terminalSelect = `SELECT x.terminal_id, x.qr, x.gateway_id, x.region_id, x.franchisee_id, x.profile,
    x.latitude::text AS latitude, x.longitude::text AS longitude, x.address, ${terminalState} AS status,
    x.maintenance_reason, vv_ts_to_ms(x.maintenance_since) AS maintenance_since, vv_ts_to_ms(x.maintenance_until) AS maintenance_until, ${stamps}
  FROM terminals x`;
export async function terminalView(db: Q, terminalId: string): Promise<TerminalView | null> {
  const r = await db.query(`${terminalSelect} WHERE x.terminal_id = $1::text`, [terminalId]);
  return r.rows[0] ? toTerminalView(r.rows[0]) : null;
}
export async function listTerminals(db: Q, f: ListFilter): Promise<Page<TerminalView>> {
  const r = await db.query(
    `${terminalSelect} WHERE ($1::text[] IS NULL OR ${terminalState} = ANY($1::text[])) AND ($2::text IS NULL OR x.terminal_id > $2::text)
       AND ($4::text IS NULL OR x.region_id = $4::text) AND ($5::text IS NULL OR x.franchisee_id = $5::text) AND ($6::text IS NULL OR x.gateway_id = $6::text)
     ORDER BY x.terminal_id LIMIT $3::int`,
    [f.state ?? null, after(f), f.limit + 1, f.regionId ?? null, f.franchiseeId ?? null, f.gatewayId ?? null],
  );
  return pageOf(r.rows, f.limit, (x) => [x.terminal_id as string], toTerminalView);
}

const toUser = (r: Record<string, unknown>): UserView => ({
  userId: r.user_id as string,
  balanceCents: Number(r.balance_cents),
  heldCents: Number(r.held_cents),
  creditLimitCents: Number(r.credit_limit_cents),
  debtCents: Number(r.debt_cents),
  ...stampsOf(r),
});
const userSelect = `SELECT x.user_id, x.balance_cents, x.held_cents, x.credit_limit_cents, x.debt_cents, ${stamps} FROM users x`;
export async function userView(db: Q, userId: string): Promise<UserView | null> {
  const r = await db.query(`${userSelect} WHERE x.user_id = $1::text`, [userId]);
  return r.rows[0] ? toUser(r.rows[0]) : null;
}
export async function listUsers(db: Q, f: ListFilter & { inDebt?: boolean | undefined }): Promise<Page<UserView>> {
  const r = await db.query(
    `${userSelect} WHERE ${retiredState} AND ($2::text IS NULL OR x.user_id > $2::text) AND (NOT $4::boolean OR x.debt_cents > 0)
     ORDER BY x.user_id LIMIT $3::int`,
    [f.state ?? null, after(f), f.limit + 1, f.inDebt ?? false],
  );
  return pageOf(r.rows, f.limit, (x) => [x.user_id as string], toUser);
}

const toTariffView = (r: Record<string, unknown>): TariffVersionView => ({
  regionId: r.region_id as string,
  version: Number(r.version),
  effectiveFrom: Number(r.effective_from),
  periods: r.periods as TariffVersionView["periods"],
  createdAt: Number(r.created_at),
});
/** Tariff versions, by region then version (versions are never edited nor retired: a new one replaces). */
export async function listTariffs(db: Q, f: ListFilter): Promise<Page<TariffVersionView>> {
  const [region, version] = f.cursor ? (decodeCursor(f.cursor, ["s", "n"]) as [string, number]) : [null, null];
  const r = await db.query(
    `SELECT region_id, version, vv_ts_to_ms(effective_from) AS effective_from, periods, vv_ts_to_ms(created_at) AS created_at
       FROM tariff_versions
      WHERE ($1::text IS NULL OR region_id = $1::text) AND ($2::text IS NULL OR (region_id, version) > ($2::text, $3::int))
      ORDER BY region_id, version LIMIT $4::int`,
    [f.regionId ?? null, region, version, f.limit + 1],
  );
  return pageOf(r.rows, f.limit, (x) => [x.region_id as string, Number(x.version)], toTariffView);
}
export async function tariffVersionView(db: Q, regionId: string, version: number): Promise<TariffVersionView | null> {
  const r = await db.query(
    `SELECT region_id, version, vv_ts_to_ms(effective_from) AS effective_from, periods, vv_ts_to_ms(created_at) AS created_at
       FROM tariff_versions WHERE region_id = $1::text AND version = $2::int`,
    [regionId, version],
  );
  return r.rows[0] ? toTariffView(r.rows[0]) : null;
}

export type RetirableKind = "region" | "franchisee" | "gateway" | "terminal" | "user";
const tables: Record<RetirableKind, { table: string; key: string }> = {
  region: { table: "regions", key: "region_id" },
  franchisee: { table: "franchisees", key: "franchisee_id" },
  gateway: { table: "gateways", key: "gateway_id" },
  terminal: { table: "terminals", key: "terminal_id" },
  user: { table: "users", key: "user_id" },
};

/**
 * Retires an object at `at` (a repeat keeps the first time). What depends on it must end first:
 * a region's, franchisee's or gateway's terminals are retired before it (409 `has_active_terminals`),
 * a terminal or user with a live session finishes it first (409 `terminal_busy` / `session_live`).
 * Call in a transaction: the row is locked so a charge cannot start between the check and the retire.
 */
export async function retire(tx: Tx, kind: RetirableKind, id: string, at: number): Promise<void> {
  const { table, key } = tables[kind];
  const r = await tx.query(`SELECT retired_at FROM ${table} WHERE ${key} = $1::text FOR UPDATE`, [id]);
  if (!r.rows[0]) throw notFound(kind, id);
  if (r.rows[0].retired_at !== null) return;
  if (kind === "region" || kind === "franchisee" || kind === "gateway") {
    const t = await tx.query(`SELECT count(*)::int AS n FROM terminals WHERE ${key} = $1::text AND retired_at IS NULL`, [id]);
    if (t.rows[0].n > 0) throw conflict("has_active_terminals", `${kind} ${id} still has ${t.rows[0].n} terminal(s) not retired; retire them first`);
  }
  if (kind === "region") {
    const g = await tx.query("SELECT count(*)::int AS n FROM gateways WHERE region_id = $1::text AND retired_at IS NULL", [id]);
    if (g.rows[0].n > 0) throw conflict("has_active_gateways", `region ${id} still has ${g.rows[0].n} gateway(s) not retired; retire them first`);
  }
  if (kind === "terminal" || kind === "user") {
    const s = await tx.query(`SELECT 1 FROM sessions WHERE ${key} = $1::text AND state IN ('authorizing', 'active', 'stopping') LIMIT 1`, [id]);
    if (s.rowCount) throw conflict(kind === "terminal" ? "terminal_busy" : "session_live", `${kind} ${id} has a session under way; retire it when the session ends`);
  }
  await tx.query(`UPDATE ${table} SET retired_at = vv_ms_to_ts($2::bigint), updated_at = now() WHERE ${key} = $1::text`, [id, at]);
}

/** Takes a terminal out of service (or changes the reason or expected return of a maintenance under way). */
export async function startMaintenance(tx: Tx, terminalId: string, b: { reason: string; expectedReturnAt?: number | null | undefined }, at: number): Promise<void> {
  const r = await tx.query<{ retired: boolean }>("SELECT retired_at IS NOT NULL AS retired FROM terminals WHERE terminal_id = $1::text FOR UPDATE", [terminalId]);
  if (!r.rows[0]) throw notFound("terminal", terminalId);
  if (r.rows[0].retired) throw new ApiError(409, "terminal_retired", `terminal ${terminalId} is retired`);
  await tx.query(
    `UPDATE terminals SET maintenance_reason = $2::text, maintenance_since = coalesce(maintenance_since, vv_ms_to_ts($3::bigint)),
       maintenance_until = vv_ms_to_ts($4::bigint), updated_at = now() WHERE terminal_id = $1::text`,
    [terminalId, b.reason, at, b.expectedReturnAt ?? null],
  );
}

/** Back in service. */
export async function endMaintenance(tx: Tx, terminalId: string): Promise<void> {
  const r = await tx.query(
    `UPDATE terminals SET maintenance_reason = NULL, maintenance_since = NULL, maintenance_until = NULL, updated_at = now() WHERE terminal_id = $1::text`,
    [terminalId],
  );
  if (!r.rowCount) throw notFound("terminal", terminalId);
}

/** Whether a user may start a charge (a retired user may not; one never seen may). */
export async function userRetired(db: Q, userId: string): Promise<boolean> {
  const r = await db.query("SELECT 1 FROM users WHERE user_id = $1::text AND retired_at IS NOT NULL", [userId]);
  return (r.rowCount ?? 0) > 0;
}

/** For the webhook call: whether a franchisee exists. */
export async function franchiseeExists(db: Q, franchiseeId: string): Promise<boolean> {
  const r = await db.query("SELECT 1 FROM franchisees WHERE franchisee_id = $1::text", [franchiseeId]);
  return (r.rowCount ?? 0) > 0;
}

/** A franchisee's terminals for its console, retired ones included (their history is its own). */
export async function terminalsOfFranchisee(
  db: Q,
  franchiseeId: string,
): Promise<{ terminal_id: string; qr: string; region_id: string; gateway_id: string; status: TerminalView["status"]; maintenance: TerminalView["maintenance"] }[]> {
  const r = await db.query(`${terminalSelect} WHERE x.franchisee_id = $1::text ORDER BY x.terminal_id`, [franchiseeId]);
  return r.rows.map((x) => {
    const v = toTerminalView(x);
    return { terminal_id: v.terminalId, qr: v.qr, region_id: v.regionId, gateway_id: v.gatewayId, status: v.status, maintenance: v.maintenance };
  });
}
