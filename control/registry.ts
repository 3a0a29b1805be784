import { z } from "zod";
import {
  terminalProfileSchema,
  type franchiseeBodySchema,
  type gatewayBodySchema,
  type regionBodySchema,
  type terminalBodySchema,
  type TerminalProfile,
} from "../contracts/index.ts";
import type { Db, Tx } from "./db.ts";
import { ApiError, notFound } from "./errors.ts";

type Q = Db | Tx;

export async function upsertRegion(db: Q, regionId: string, b: z.infer<typeof regionBodySchema>): Promise<void> {
  await db.query(
    `INSERT INTO regions (region_id, name, timezone) VALUES ($1::text, $2::text, $3::text)
     ON CONFLICT (region_id) DO UPDATE SET name = EXCLUDED.name, timezone = EXCLUDED.timezone, updated_at = now()`,
    [regionId, b.name, b.timezone],
  );
}

export async function upsertFranchisee(db: Q, franchiseeId: string, b: z.infer<typeof franchiseeBodySchema>): Promise<void> {
  await db.query(
    `INSERT INTO franchisees (franchisee_id, name) VALUES ($1::text, $2::text)
     ON CONFLICT (franchisee_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()`,
    [franchiseeId, b.name],
  );
}

export async function upsertGateway(db: Q, gatewayId: string, b: z.infer<typeof gatewayBodySchema>): Promise<void> {
  await requireRegion(db, b.regionId);
  await db.query(
    `INSERT INTO gateways (gateway_id, region_id) VALUES ($1::text, $2::text)
     ON CONFLICT (gateway_id) DO UPDATE SET region_id = EXCLUDED.region_id, updated_at = now()`,
    [gatewayId, b.regionId],
  );
}

export async function upsertTerminal(db: Q, terminalId: string, b: z.infer<typeof terminalBodySchema>): Promise<void> {
  await requireRegion(db, b.regionId);
  const refs = await db.query<{ gw: boolean; fr: boolean; qr_owner: string | null }>(
    `SELECT EXISTS (SELECT 1 FROM gateways WHERE gateway_id = $1::text) AS gw,
            EXISTS (SELECT 1 FROM franchisees WHERE franchisee_id = $2::text) AS fr,
            (SELECT terminal_id FROM terminals WHERE qr = $3::text) AS qr_owner`,
    [b.gatewayId, b.franchiseeId, b.qr],
  );
  const r = refs.rows[0]!;
  if (!r.gw) throw notFound("gateway", b.gatewayId);
  if (!r.fr) throw notFound("franchisee", b.franchiseeId);
  if (r.qr_owner && r.qr_owner !== terminalId)
    throw new ApiError(409, "qr_in_use", `qr is already printed on terminal ${r.qr_owner}`);
  await db.query(
    `INSERT INTO terminals (terminal_id, qr, gateway_id, region_id, franchisee_id, profile)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::jsonb)
     ON CONFLICT (terminal_id) DO UPDATE SET qr = EXCLUDED.qr, gateway_id = EXCLUDED.gateway_id,
       region_id = EXCLUDED.region_id, franchisee_id = EXCLUDED.franchisee_id, profile = EXCLUDED.profile, updated_at = now()`,
    [terminalId, b.qr, b.gatewayId, b.regionId, b.franchiseeId, JSON.stringify(b.profile)],
  );
}

async function requireRegion(db: Q, regionId: string): Promise<string> {
  const r = await db.query<{ timezone: string }>("SELECT timezone FROM regions WHERE region_id = $1::text", [regionId]);
  if (!r.rows[0]) throw notFound("region", regionId);
  return r.rows[0].timezone;
}

export interface TerminalRecord {
  terminalId: string;
  qr: string;
  gatewayId: string;
  regionId: string;
  franchiseeId: string;
  profile: TerminalProfile;
  timezone: string;
}

const terminalSelect = `SELECT t.terminal_id, t.qr, t.gateway_id, t.region_id, t.franchisee_id, t.profile, r.timezone
  FROM terminals t JOIN regions r USING (region_id)`;

/**
 * Rows are parsed too: a profile stored by an older version gets today's defaults, and so does
 * each field that today's bounds refuse (one stored before the bounds existed, e.g. a `maxPowerW`
 * of 4000.5): a bad field must not make every call on the terminal fail.
 */
export function storedProfile(raw: unknown): TerminalProfile {
  const obj: Record<string, unknown> = raw && typeof raw === "object" && !Array.isArray(raw) ? { ...(raw as Record<string, unknown>) } : {};
  for (let tries = 0; tries < 8; tries++) {
    const r = terminalProfileSchema.safeParse(obj);
    if (r.success) return r.data;
    for (const i of r.error.issues) delete obj[String(i.path[0])];
  }
  return terminalProfileSchema.parse({});
}

function toTerminal(row: Record<string, unknown>): TerminalRecord {
  return {
    terminalId: row.terminal_id as string,
    qr: row.qr as string,
    gatewayId: row.gateway_id as string,
    regionId: row.region_id as string,
    franchiseeId: row.franchisee_id as string,
    profile: storedProfile(row.profile),
    timezone: row.timezone as string,
  };
}

export async function terminalByQr(db: Q, qr: string): Promise<TerminalRecord | null> {
  const r = await db.query(`${terminalSelect} WHERE t.qr = $1::text`, [qr]);
  return r.rows[0] ? toTerminal(r.rows[0]) : null;
}

export async function terminalById(db: Q, terminalId: string): Promise<TerminalRecord | null> {
  const r = await db.query(`${terminalSelect} WHERE t.terminal_id = $1::text`, [terminalId]);
  return r.rows[0] ? toTerminal(r.rows[0]) : null;
}

/** Every registered terminal's id. */
export async function allTerminalIds(db: Q): Promise<string[]> {
  const r = await db.query<{ terminal_id: string }>("SELECT terminal_id FROM terminals");
  return r.rows.map((x) => x.terminal_id);
}

/** What a scan of the terminal's code shows: the terminal, its region and the region's time zone. */
export async function terminalPlace(db: Q, terminalId: string): Promise<{ terminal_id: string; qr: string; region_id: string; timezone: string; gateway_id: string } | null> {
  const r = await db.query<{ terminal_id: string; qr: string; region_id: string; timezone: string; gateway_id: string }>(
    "SELECT t.terminal_id, t.qr, t.region_id, r.timezone, t.gateway_id FROM terminals t JOIN regions r USING (region_id) WHERE t.terminal_id = $1::text",
    [terminalId],
  );
  return r.rows[0] ?? null;
}
