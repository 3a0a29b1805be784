import { instantOf } from "../../contracts/index.ts";
import type { Db, Tx } from "../db.ts";
import { ApiError } from "../errors.ts";
import { endedSessionsOfFranchisee } from "../sessions/store.ts";

type Q = Db | Tx;

export interface StatementRow {
  terminalId: string;
  sessions: number;
  energyWh: number;
  feeCents: number;
  refundCents: number;
  netCents: number;
}

export interface Statement {
  franchiseeId: string;
  month: string;
  timezone: string;
  from: number;
  to: number;
  generatedAt: number;
  terminals: StatementRow[];
  totals: Omit<StatementRow, "terminalId">;
  refunds: { refundId: string; sessionId: string; terminalId: string; amountCents: number; reason: string; createdAt: number }[];
}

/** [from, to) of a calendar month `YYYY-MM` in tz. */
export function monthRange(month: string, tz: string): { from: number; to: number } {
  const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month);
  if (!m) throw new ApiError(400, "invalid_request", "month must be YYYY-MM", [{ path: "params.month", message: "must be YYYY-MM" }]);
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const [ny, nm] = mo === 12 ? [y + 1, 1] : [y, mo + 1];
  return { from: instantOf(y, mo, 1, 0, tz), to: instantOf(ny, nm, 1, 0, tz) };
}

/**
 * A franchisee's monthly settlement statement: per terminal, the completed sessions that ended in
 * the month (their count, energy and billed fees: the sums of their receipts' `energyWh` and
 * `feeCents`), and the refunds made in the month on its terminals (booked when they are made, so
 * a closed month's statement does not change when a later refund comes). Energy is summed in exact
 * mWh. Only the franchisee's own rows are read.
 */
export async function buildStatement(db: Q, franchiseeId: string, month: string, tz: string, now: number): Promise<Statement> {
  const { from, to } = monthRange(month, tz);
  const sessions = await endedSessionsOfFranchisee(db, franchiseeId, from, to);
  const refunds = await db.query<Statement["refunds"][number]>(
    `SELECT refund_id AS "refundId", session_id AS "sessionId", terminal_id AS "terminalId", amount_cents AS "amountCents", reason,
       vv_ts_to_ms(created_at) AS "createdAt"
     FROM refunds WHERE franchisee_id = $1::text AND created_at >= vv_ms_to_ts($2::bigint) AND created_at < vv_ms_to_ts($3::bigint)
     ORDER BY created_at, refund_id`,
    [franchiseeId, from, to],
  );
  const acc = new Map<string, { sessions: number; mwh: number; fee: number; refund: number }>();
  const of = (t: string) => {
    let a = acc.get(t);
    if (!a) acc.set(t, (a = { sessions: 0, mwh: 0, fee: 0, refund: 0 }));
    return a;
  };
  for (const s of sessions) {
    const a = of(s.terminalId);
    a.sessions++;
    a.mwh += s.energyMwh;
    a.fee += s.feeCents;
  }
  for (const r of refunds.rows) of(r.terminalId).refund += r.amountCents;
  const terminals = [...acc.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([terminalId, a]) => ({ terminalId, sessions: a.sessions, energyWh: a.mwh / 1000, feeCents: a.fee, refundCents: a.refund, netCents: a.fee - a.refund }));
  const t = [...acc.values()].reduce((x, a) => ({ sessions: x.sessions + a.sessions, mwh: x.mwh + a.mwh, fee: x.fee + a.fee, refund: x.refund + a.refund }), { sessions: 0, mwh: 0, fee: 0, refund: 0 });
  return {
    franchiseeId,
    month,
    timezone: tz,
    from,
    to,
    generatedAt: now,
    terminals,
    totals: { sessions: t.sessions, energyWh: t.mwh / 1000, feeCents: t.fee, refundCents: t.refund, netCents: t.fee - t.refund },
    refunds: refunds.rows,
  };
}

/** One row per terminal and a total row; RFC 4180 (ids match [A-Za-z0-9_-], so nothing needs quoting). */
export function statementCsv(s: Statement): string {
  const lines = ["terminal_id,sessions,energy_wh,fee_cents,refund_cents,net_cents"];
  const row = (id: string, r: Omit<StatementRow, "terminalId">) => [id, r.sessions, r.energyWh, r.feeCents, r.refundCents, r.netCents].join(",");
  for (const t of s.terminals) lines.push(row(t.terminalId, t));
  lines.push(row("TOTAL", s.totals));
  return lines.join("\r\n") + "\r\n";
}
