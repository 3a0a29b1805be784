import { Int8OverflowError, type Db, type Tx } from "../db.ts";
import { serialReads } from "./serial.ts";

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

const hh = (h: number) => String(h).padStart(2, "0");
// The 24 sums as one text: concat_ws measured faster than array_to_string(ARRAY[...]). No sum is
// NULL (vv_sum starts at 0), which concat_ws would skip; parseCurve would then refuse the curve.
const HOURS = Array.from({ length: 24 }, (_, h) => `vv_sum(mwh_${hh(h)})`).join(", ");
// session_usage rows in the aggregates' columns, for the edges of a range that are not whole hours.
const RAW_HOURS = Array.from({ length: 24 }, (_, h) => `CASE WHEN hour_of_day = ${h} THEN energy_mwh ELSE 0 END AS mwh_${hh(h)}`).join(", ");
const HOUR_NAMES = Array.from({ length: 24 }, (_, h) => `mwh_${hh(h)}`).join(", ");

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

interface CurveRow {
  id: string;
  fee: string;
  n: number;
  mwh: string;
}

/**
 * Which aggregates a report reads whole days from, beside usage_hourly and session_usage
 * (sql/026, sql/027): `byTerminal`, usage_terminal_daily, when no user is needed; `byUser`,
 * usage_daily with whole weeks from usage_user_weekly, for a report by or of a user; `all`,
 * usage_daily alone (keyed by everything), for a selection the other two cannot make (by user
 * and franchisee).
 */
export type Aggregates = "byUser" | "byTerminal" | "all";
type Source = "usage_daily" | "usage_user_weekly" | "usage_terminal_daily" | "usage_hourly" | "session_usage";

/** Weeks as TimescaleDB's time_bucket('7 days') and sql/027's date_bin cut them: from a Monday 00:00 UTC (1970-01-05). */
export const WEEK_MS = 7 * DAY_MS;
export const WEEK_ORIGIN_MS = 4 * DAY_MS;

/**
 * [from, to) as the fewest rows to read: whole UTC weeks from usage_user_weekly (`byUser`), whole
 * UTC days from the daily aggregate, whole hours at either end from usage_hourly, and the minutes
 * before the first whole hour and after the last from session_usage itself (the aggregates bucket
 * by start; a range need not fall on hours).
 */
export function rangeSources(from: number, to: number, aggregates: Aggregates = "byUser"): { source: Source; from: number; to: number }[] {
  const out: { source: Source; from: number; to: number }[] = [];
  const add = (source: Source, a: number, b: number) => {
    if (a < b) out.push({ source, from: a, to: b });
  };
  const ceil = (t: number, w: number, o = 0) => Math.ceil((t - o) / w) * w + o;
  const floor = (t: number, w: number, o = 0) => Math.floor((t - o) / w) * w + o;
  const h0 = ceil(from, HOUR_MS);
  const h1 = floor(to, HOUR_MS);
  if (h0 >= h1) {
    add("session_usage", from, to);
    return out;
  }
  const d0 = ceil(from, DAY_MS);
  const d1 = floor(to, DAY_MS);
  add("session_usage", from, h0);
  if (d0 < d1) {
    add("usage_hourly", h0, d0);
    const w0 = ceil(d0, WEEK_MS, WEEK_ORIGIN_MS);
    const w1 = floor(d1, WEEK_MS, WEEK_ORIGIN_MS);
    if (aggregates === "byTerminal") add("usage_terminal_daily", d0, d1);
    else if (aggregates === "byUser" && w0 < w1) {
      add("usage_daily", d0, w0);
      add("usage_user_weekly", w0, w1);
      add("usage_daily", w1, d1);
    } else add("usage_daily", d0, d1);
    add("usage_hourly", d1, h1);
  } else add("usage_hourly", h0, h1);
  add("session_usage", h1, to);
  return out;
}

/**
 * Usage of the sessions that started in [from, to), grouped: their whole billed energy and fee,
 * and their energy by local hour of day. A session counts once it is rolled, seconds after it
 * ends. Read from the usage aggregates (sql/012_usage_aggregates.sql and the reports' own of
 * sql/026 and sql/027: continuous aggregates on TimescaleDB, rollup tables on plain PostgreSQL),
 * without parallel workers (serial.ts), which bucket sessions by start with their 24
 * hours of day as columns, so the grouping is plain sums and one row per group comes back, its
 * curve as one text; energies are summed in integer mWh (64-bit, failing rather than wrapping),
 * Wh exact to the mWh.
 */
export async function usageReport(db: Db | Tx, q: UsageQuery): Promise<(UsageTotals & { id: string })[]> {
  const key = column[q.groupBy];
  const params: unknown[] = [];
  const param = (v: unknown, type: string) => `$${params.push(v)}::${type}`;
  // Only the filters asked for (a user's sessions, a franchisee's), each a parameter of its own.
  const user = q.userId === undefined ? [] : [`user_id = ${param(q.userId, "text")}`];
  const franchisee = q.franchiseeId === undefined ? [] : [`franchisee_id = ${param(q.franchiseeId, "text")}`];
  // A report that needs no user reads whole days from the aggregate keyed by terminal (about
  // 1,000 rows a day, against about one a session in usage_daily); one by user reads whole weeks
  // from the one keyed by user alone (about 9,000 rows a week, against about 24,000).
  const byUser = q.groupBy === "user" || q.userId !== undefined;
  const aggregates = !byUser ? "byTerminal" : q.franchiseeId === undefined ? "byUser" : "all";
  const parts = rangeSources(q.from, q.to, aggregates).map(({ source, from, to }) => {
    const time = source === "session_usage" ? "started_at" : "bucket";
    const where = [`${time} >= vv_ms_to_ts(${param(from, "bigint")})`, `${time} < vv_ms_to_ts(${param(to, "bigint")})`, ...user, ...franchisee].join(" AND ");
    return source === "session_usage"
      ? `SELECT ${key} AS id, fee_cents, sessions::bigint AS sessions, ${RAW_HOURS} FROM session_usage WHERE ${where}`
      : `SELECT ${key} AS id, fee_cents, sessions, ${HOUR_NAMES} FROM ${source} WHERE ${where}`;
  });
  if (!parts.length) return [];
  const r = await serialReads(db, (c) => c.query<CurveRow>(
    `SELECT id, vv_sum(fee_cents)::text AS fee, vv_sum(sessions)::int AS n, concat_ws(',', ${HOURS}) AS mwh
     FROM (${parts.join("\n UNION ALL ")}) x
     GROUP BY id ORDER BY id COLLATE "C"`,
    params,
  ));
  // In SQL order, and the curve parsed by hand: for 10 000 groups these were a third of the time.
  return r.rows.map((x) => {
    const { hourly, mwh } = parseCurve(x.mwh);
    const feeCents = Number(x.fee);
    // Integers stay exact in a double up to 2^53; past that, fail rather than round.
    if (!Number.isSafeInteger(feeCents)) throw new RangeError(`fees of ${x.id} exceed 2^53 cents`);
    return { id: x.id, energyWh: mwh / 1000, feeCents, sessions: x.n, hourly };
  });
}

/** "m0,m1,…,m23" (non-negative integer mWh) as Wh by hour, and the total in mWh. */
function parseCurve(text: string): { hourly: number[]; mwh: number } {
  const hourly: number[] = [];
  let total = 0;
  let v = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 44;
    if (c === 44) {
      hourly.push(v / 1000);
      total += v;
      v = 0;
    } else v = v * 10 + (c - 48);
  }
  // Integers stay exact in a double up to 2^53 mWh (9 TWh); past that, fail rather than round.
  if (hourly.length !== 24) throw new RangeError(`not a usage curve: ${text.slice(0, 80)}`);
  if (!Number.isSafeInteger(total)) throw new Int8OverflowError(`a usage curve's total is past 2^53 mWh: ${text.slice(0, 80)}`);
  return { hourly, mwh: total };
}

export function emptyTotals(): UsageTotals {
  return { energyWh: 0, feeCents: 0, sessions: 0, hourly: new Array<number>(24).fill(0) };
}
