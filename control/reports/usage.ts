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
 * seconds after it ends. One scan of session_usage (its last-hour rows carry fees and counts);
 * energies are summed in integer mWh, Wh exact to the mWh.
 */
export async function usageReport(db: Db | Tx, q: UsageQuery): Promise<(UsageTotals & { id: string })[]> {
  // (Measured on 30 days of 10 000 users, 1000 terminals: this grouping beat 24 FILTER sums per
  // group and array_agg per group for every grouping but `user`, where all three were too slow.)
  const r = await db.query<{ id: string; h: number; mwh: string; fee: string; n: number }>(
    `SELECT ${column[q.groupBy]} AS id, hour_of_day AS h, sum(energy_mwh)::text AS mwh, sum(fee_cents)::text AS fee, sum(sessions)::int AS n
     FROM session_usage
     WHERE started_at >= vv_ms_to_ts($1::bigint) AND started_at < vv_ms_to_ts($2::bigint)
       AND ($3::text IS NULL OR user_id = $3::text) AND ($4::text IS NULL OR franchisee_id = $4::text)
     GROUP BY 1, 2`,
    [q.from, q.to, q.userId ?? null, q.franchiseeId ?? null],
  );
  const groups = new Map<string, { fee: bigint; sessions: number; hourly: bigint[] }>();
  for (const x of r.rows) {
    let g = groups.get(x.id);
    if (!g) groups.set(x.id, (g = { fee: 0n, sessions: 0, hourly: new Array<bigint>(24).fill(0n) }));
    g.fee += BigInt(x.fee);
    g.sessions += x.n;
    g.hourly[x.h]! += BigInt(x.mwh);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, g]) => ({
      id,
      energyWh: mwhToWh(g.hourly.reduce((a, b) => a + b, 0n)),
      feeCents: Number(g.fee),
      sessions: g.sessions,
      hourly: g.hourly.map(mwhToWh),
    }));
}

export function emptyTotals(): UsageTotals {
  return { energyWh: 0, feeCents: 0, sessions: 0, hourly: new Array<number>(24).fill(0) };
}

/** Exact to the mWh: the decimal of mWh / 1000, as a number. */
function mwhToWh(mwh: bigint): number {
  return Number(mwh) / 1000;
}
