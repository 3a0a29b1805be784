import type { Db } from "../db.ts";
import { notFound } from "../errors.ts";
import { suggestTimeOfUse, type SuggestedPeriod } from "./tou.ts";

/** Utilisation at or above this in an hour of day: demand is at capacity. */
export const SATURATED = 0.8;
/** Utilisation at or below this: terminals stand idle. */
export const IDLE = 0.1;

export interface RegionInsights {
  regionId: string;
  timezone: string;
  from: number;
  to: number;
  /** Terminals registered in the region. */
  installed: number;
  /** By local hour of day: the share of the installed terminals' time spent in sessions. */
  utilisation: number[];
  /** The busiest hour: terminals busy on average during it, and when it began. */
  peak: { busy: number; at: number | null; ofInstalled: number };
  saturatedHours: number[];
  idleHours: number[];
  suggestedPeriods: SuggestedPeriod[];
  /**
   * Peak load against the site's capacity (issue 13): the region's kW (null when not set), the
   * highest hourly average power drawn (energy delivered in the busiest hour, kWh per hour = kW)
   * and its share of the capacity (null without a capacity). Above 1, the site was overdrawn.
   */
  capacity: { capacityKw: number | null; peakLoadKw: number; peakLoadAt: number | null; ofCapacity: number | null };
}

const round = (x: number, places = 4) => Math.round(x * 10 ** places) / 10 ** places;

/**
 * Step 108: how a region's terminals are used by hour of day: the time sessions ran in each local
 * hour (session_usage.busy_ms, from power on to power off), against the installed terminals.
 */
export async function regionInsights(db: Db, regionId: string, from: number, to: number): Promise<RegionInsights> {
  // Installed: the region's terminals not retired before the range began (a retired terminal
  // keeps its row and its history, but after its retirement it is no capacity to use).
  const region = await db.query<{ timezone: string; installed: number }>(
    `SELECT r.timezone, (SELECT count(*)::int FROM terminals t WHERE t.region_id = r.region_id
              AND (t.retired_at IS NULL OR t.retired_at > vv_ms_to_ts($2::bigint))) AS installed
       FROM regions r WHERE region_id = $1::text`,
    [regionId, from],
  );
  const reg = region.rows[0];
  if (!reg) throw notFound("region", regionId);
  const r = await db.query<{ h: number; hours: number; busy: number | null; peak: number | null; peak_at: number | null }>(
    `WITH span AS (
       -- How often each local hour of day occurs in the range.
       SELECT extract(hour FROM g AT TIME ZONE $2::text)::int AS h, count(*)::int AS hours
       FROM generate_series(date_trunc('hour', vv_ms_to_ts($3::bigint)), vv_ms_to_ts($4::bigint) - interval '1 hour', interval '1 hour') g
       GROUP BY 1
     ),
     busy AS (
       -- Terminals busy on average in each hour: session time in it over an hour.
       SELECT hour_start, hour_of_day AS h, sum(busy_ms)::float8 / 3600000 AS busy
       FROM session_usage
       WHERE region_id = $1::text AND hour_start >= vv_ms_to_ts($3::bigint) AND hour_start < vv_ms_to_ts($4::bigint)
       GROUP BY hour_start, hour_of_day
     ),
     by_hour AS (
       SELECT h, sum(busy) AS busy, max(busy) AS peak, (array_agg(vv_ts_to_ms(hour_start) ORDER BY busy DESC, hour_start))[1] AS peak_at
       FROM busy GROUP BY h
     )
     SELECT s.h, s.hours, b.busy, b.peak, b.peak_at FROM span s LEFT JOIN by_hour b USING (h) ORDER BY s.h`,
    [regionId, reg.timezone, from, to],
  );
  const utilisation = new Array<number>(24).fill(0);
  let peak = { busy: 0, at: null as number | null };
  for (const x of r.rows) {
    if (reg.installed > 0 && x.busy !== null) utilisation[x.h] = round(x.busy / (reg.installed * x.hours));
    if (x.peak !== null && x.peak > peak.busy) peak = { busy: x.peak, at: Number(x.peak_at) };
  }
  const load = await db.query<{ capacity_kw: string | null; peak_mwh: number | null; peak_at: number | null }>(
    `SELECT (SELECT capacity_kw::text FROM regions WHERE region_id = $1::text) AS capacity_kw, max(mwh) AS peak_mwh,
            (array_agg(vv_ts_to_ms(hour_start) ORDER BY mwh DESC, hour_start))[1] AS peak_at
       FROM (SELECT hour_start, sum(energy_mwh)::bigint AS mwh FROM session_usage
              WHERE region_id = $1::text AND hour_start >= vv_ms_to_ts($2::bigint) AND hour_start < vv_ms_to_ts($3::bigint)
              GROUP BY hour_start) h`,
    [regionId, from, to],
  );
  const capacityKw = load.rows[0]?.capacity_kw == null ? null : Number(load.rows[0].capacity_kw);
  // mWh in one hour / 1e6 = kWh in that hour = its average kW.
  const peakLoadKw = round(Number(load.rows[0]?.peak_mwh ?? 0) / 1e6, 3);
  const capacity = {
    capacityKw,
    peakLoadKw,
    peakLoadAt: load.rows[0]?.peak_at == null ? null : Number(load.rows[0].peak_at),
    ofCapacity: capacityKw ? round(peakLoadKw / capacityKw) : null,
  };
  const hoursWhere = (f: (u: number) => boolean) => utilisation.flatMap((u, h) => (f(u) ? [h] : []));
  return {
    regionId,
    timezone: reg.timezone,
    from,
    to,
    installed: reg.installed,
    utilisation,
    peak: { busy: round(peak.busy, 2), at: peak.at, ofInstalled: reg.installed ? round(peak.busy / reg.installed) : 0 },
    saturatedHours: hoursWhere((u) => u >= SATURATED),
    idleHours: hoursWhere((u) => u <= IDLE),
    suggestedPeriods: suggestTimeOfUse(utilisation),
    capacity,
  };
}
