import type { Db, Tx } from "../db.ts";
import { faultsOpenedIn } from "../faults/store.ts";
import { serialReads } from "./serial.ts";
import { emptyTotals, usageReport, type UsageTotals } from "./usage.ts";

type Q = Db | Tx;

export interface PackageTerminal extends UsageTotals {
  terminalId: string;
  regionId: string;
  /** The share of the period the terminal spent in sessions (by the hours they ran in). */
  busyShare: number;
  faultsOpened: number;
}

/** A franchisee's grouped data and results for a period (steps 109-110). */
export interface FranchiseePackage {
  franchiseeId: string;
  from: number;
  to: number;
  generatedAt: number;
  totals: UsageTotals;
  terminals: PackageTerminal[];
  faults: Awaited<ReturnType<typeof faultsOpenedIn>>;
  /** Sessions started in the period that are not over (or not yet rolled): in a later package. */
  pendingSessions: number;
}

/**
 * Everything a franchisee gets about its own terminals for [from, to): usage as in the reports
 * (sessions started in the period), per terminal and in total, how busy each terminal was, and
 * the faults opened in the period. Nothing of another franchisee's can enter: every part is
 * selected by franchisee id.
 */
export function buildPackage(db: Q, franchiseeId: string, from: number, to: number, now: number): Promise<FranchiseePackage> {
  return serialReads(db, (q) => packageOf(q, franchiseeId, from, to, now));
}

async function packageOf(db: Q, franchiseeId: string, from: number, to: number, now: number): Promise<FranchiseePackage> {
  const terminals = await db.query<{ terminal_id: string; region_id: string; faults: number }>(
    `SELECT t.terminal_id, t.region_id,
       (SELECT count(*)::int FROM faults f WHERE f.terminal_id = t.terminal_id AND f.franchisee_id = $1::text
          AND f.opened_at >= vv_ms_to_ts($2::bigint) AND f.opened_at < vv_ms_to_ts($3::bigint)) AS faults
     FROM terminals t WHERE t.franchisee_id = $1::text ORDER BY t.terminal_id`,
    [franchiseeId, from, to],
  );
  // Session time on each of the franchisee's terminals in the period (a list, not a join).
  const busy = await db.query<{ terminal_id: string; busy: number | null }>(
    `SELECT terminal_id, sum(busy_ms)::float8 / ($3::bigint - $2::bigint) AS busy FROM session_usage
     WHERE terminal_id = ANY($1::text[]) AND hour_start >= vv_ms_to_ts($2::bigint) AND hour_start < vv_ms_to_ts($3::bigint) GROUP BY terminal_id`,
    [terminals.rows.map((t) => t.terminal_id), from, to],
  );
  const busyOf = new Map(busy.rows.map((b) => [b.terminal_id, b.busy]));
  const pending = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM sessions WHERE franchisee_id = $1::text AND usage_rolled_at IS NULL AND state NOT IN ('failed')
       AND coalesce(started_at, created_at) >= vv_ms_to_ts($2::bigint) AND coalesce(started_at, created_at) < vv_ms_to_ts($3::bigint)`,
    [franchiseeId, from, to],
  );
  const usage = new Map((await usageReport(db, { groupBy: "terminal", from, to, franchiseeId })).map((u) => [u.id, u]));
  const [totals] = await usageReport(db, { groupBy: "franchisee", from, to, franchiseeId });
  const { id: _id, ...sum } = totals ?? { id: franchiseeId, ...emptyTotals() };
  return {
    franchiseeId,
    from,
    to,
    generatedAt: now,
    totals: sum,
    terminals: terminals.rows.map((t) => {
      const { id: _t, ...u } = usage.get(t.terminal_id) ?? { id: t.terminal_id, ...emptyTotals() };
      return {
        terminalId: t.terminal_id,
        regionId: t.region_id,
        ...u,
        busyShare: Math.round((busyOf.get(t.terminal_id) ?? 0) * 10_000) / 10_000,
        faultsOpened: t.faults,
      };
    }),
    faults: await faultsOpenedIn(db, franchiseeId, from, to),
    pendingSessions: pending.rows[0]!.n,
  };
}

const HOURS = Array.from({ length: 24 }, (_, h) => `wh_${String(h).padStart(2, "0")}`);

/** One row per terminal and a total row; RFC 4180 (ids match [A-Za-z0-9_-], so nothing needs quoting). */
export function packageCsv(p: FranchiseePackage): string {
  const head = ["terminal_id", "region_id", "sessions", "energy_wh", "fee_cents", "busy_share", "faults_opened", ...HOURS];
  const row = (id: string, region: string, t: UsageTotals, busy: number | null, faults: number) =>
    [id, region, t.sessions, t.energyWh, t.feeCents, busy ?? "", faults, ...t.hourly].join(",");
  const lines = [head.join(",")];
  for (const t of p.terminals) lines.push(row(t.terminalId, t.regionId, t, t.busyShare, t.faultsOpened));
  lines.push(row("TOTAL", "", p.totals, null, p.faults.length));
  return lines.join("\r\n") + "\r\n";
}
