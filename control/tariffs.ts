import { toTariff, type Tariff, type TariffPeriodInput } from "../contracts/index.ts";
import type { Db, Tx } from "./db.ts";
import { notFound } from "./errors.ts";

type Q = Db | Tx;

export interface TariffVersion {
  regionId: string;
  version: number;
  effectiveFrom: number;
  periods: TariffPeriodInput[];
  tariff: Tariff;
}

/** A new version, numbered after the last; versions are never edited. */
export async function addTariffVersion(db: Tx, regionId: string, effectiveFrom: number, periods: TariffPeriodInput[]): Promise<TariffVersion> {
  const region = await db.query<{ timezone: string }>("SELECT timezone FROM regions WHERE region_id = $1::text FOR UPDATE", [regionId]);
  const tz = region.rows[0]?.timezone;
  if (!tz) throw notFound("region", regionId);
  const r = await db.query<{ version: number }>(
    `INSERT INTO tariff_versions (region_id, version, effective_from, periods)
     SELECT $1::text, coalesce(max(version), 0) + 1, vv_ms_to_ts($2::bigint), $3::jsonb
       FROM tariff_versions WHERE region_id = $1::text
     RETURNING version`,
    [regionId, effectiveFrom, JSON.stringify(periods)],
  );
  const version = r.rows[0]!.version;
  return { regionId, version, effectiveFrom, periods, tariff: toTariff(version, tz, periods) };
}

const select = `SELECT tv.region_id, tv.version, vv_ts_to_ms(tv.effective_from) AS effective_from, tv.periods, r.timezone
  FROM tariff_versions tv JOIN regions r USING (region_id)`;

/**
 * The version in force at a time as SQL (one row, or none), over SQL expressions for the region
 * and the time in ms: what tariffInForce runs, and what a statement that needs it beside other
 * things embeds (toVersion reads its row).
 */
export const inForceSql = (region: string, atMs: string) =>
  `${select} WHERE tv.region_id = ${region} AND tv.effective_from <= vv_ms_to_ts(${atMs})
   ORDER BY tv.effective_from DESC, tv.version DESC LIMIT 1`;

/** One version as SQL, over SQL expressions for the region and the version number (toVersion reads its row). */
export const versionSql = (region: string, version: string) => `${select} WHERE tv.region_id = ${region} AND tv.version = ${version}`;

export function toVersion(row: Record<string, unknown>): TariffVersion {
  const periods = row.periods as TariffPeriodInput[];
  return {
    regionId: row.region_id as string,
    version: row.version as number,
    effectiveFrom: row.effective_from as number,
    periods,
    tariff: toTariff(row.version as number, row.timezone as string, periods),
  };
}

/** The version in force at `at`: the latest effective_from not after it (latest version on ties). */
export async function tariffInForce(db: Q, regionId: string, at: number): Promise<TariffVersion | null> {
  const r = await db.query(inForceSql("$1::text", "$2::bigint"), [regionId, at]);
  return r.rows[0] ? toVersion(r.rows[0]) : null;
}

export async function tariffVersion(db: Q, regionId: string, version: number): Promise<TariffVersion> {
  const r = await db.query(versionSql("$1::text", "$2::int"), [regionId, version]);
  if (!r.rows[0]) throw notFound("tariff", `${regionId} v${version}`);
  return toVersion(r.rows[0]);
}
