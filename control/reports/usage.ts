import type { Db, Tx } from "../db.ts";

export type GroupBy = "user" | "terminal" | "region" | "franchisee";

const column: Record<GroupBy, string> = { user: "user_id", terminal: "terminal_id", region: "region_id", franchisee: "franchisee_id" };

export interface UsageTotals {
  energyWh: number;
  feeCents: number;
  sessions: number;
  /** Wh by hour of day (0-23) in the region's time zone; sums to energyWh. */
  hourly: number[];
}

export interface UsageQuery {
  groupBy: GroupBy;
  from: number;
  to: number;
  /** Only this user's sessions (GET /v1/me/usage). */
  userId?: string;
  /** Only sessions on this franchisee's terminals (GET /v1/franchisee/usage). */
  franchiseeId?: string;
}

/**
 * Usage of the sessions that started in [from, to), grouped: their whole billed energy and fee,
 * and their energy by local hour of day (sql/008_usage.sql). A session counts once it is rolled,
 * seconds after it ends. Energies are summed in integer mWh; Wh are exact to the mWh.
 */
export async function usageReport(db: Db | Tx, q: UsageQuery): Promise<(UsageTotals & { id: string })[]> {
  const r = await db.query<{ id: string; sessions: number; mwh: string; fee: string; hod: (number | null)[]; hmwh: (string | null)[] }>(
    `WITH s AS (
       SELECT session_id, ${column[q.groupBy]} AS id, energy_mwh, fee_cents FROM sessions
       WHERE usage_rolled_at IS NOT NULL AND started_at >= vv_ms_to_ts($1::bigint) AND started_at < vv_ms_to_ts($2::bigint)
         AND ($3::text IS NULL OR user_id = $3::text) AND ($4::text IS NULL OR franchisee_id = $4::text)
     ),
     tot AS (SELECT id, count(*)::int AS sessions, sum(energy_mwh) AS mwh, sum(fee_cents) AS fee FROM s GROUP BY id),
     hrs AS (SELECT s.id, u.hour_of_day, sum(u.energy_mwh) AS mwh FROM s JOIN session_usage u USING (session_id) GROUP BY 1, 2)
     SELECT t.id, t.sessions, t.mwh::text, t.fee::text, array_agg(h.hour_of_day) AS hod, array_agg(h.mwh::text) AS hmwh
     FROM tot t LEFT JOIN hrs h USING (id) GROUP BY t.id, t.sessions, t.mwh, t.fee ORDER BY t.id`,
    [q.from, q.to, q.userId ?? null, q.franchiseeId ?? null],
  );
  return r.rows.map((x) => {
    const hourlyMwh = new Array<bigint>(24).fill(0n);
    x.hod.forEach((h, i) => {
      if (h !== null) hourlyMwh[h] = BigInt(x.hmwh[i]!);
    });
    return { id: x.id, energyWh: mwhToWh(BigInt(x.mwh)), feeCents: Number(x.fee), sessions: x.sessions, hourly: hourlyMwh.map(mwhToWh) };
  });
}

export function emptyTotals(): UsageTotals {
  return { energyWh: 0, feeCents: 0, sessions: 0, hourly: new Array<number>(24).fill(0) };
}

/** Exact to the mWh: the decimal of mWh / 1000, as a number. */
function mwhToWh(mwh: bigint): number {
  return Number(mwh) / 1000;
}
