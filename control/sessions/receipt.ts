import { meterFromJson, meterJsonSchema, periodInputs, Rational, type Meter, type Tariff } from "../../contracts/index.ts";
import type { Db, Tx } from "../db.ts";
import { conflict } from "../errors.ts";
import { refundsOfSession, type Refund } from "../refunds.ts";
import { tariffVersion } from "../tariffs.ts";
import { ledgerOfSession, meterOfSession, type SessionRow } from "./store.ts";

type Q = Db | Tx;

/** One tariff period the session used: its prices, the energy and time in it, and their cents. */
export interface ReceiptLine {
  start: string;
  end: string;
  energyCentsPerKwh: number;
  timeCentsPerHour: number;
  /** Energy in this period, Wh (exact to the mWh the meter counts, rounded to 3 decimals for reading). */
  energyWh: number;
  /** Session time in this period, seconds (3 decimals). */
  durationS: number;
  energyCents: number;
  timeCents: number;
}

/**
 * The fee split by tariff period into whole cents that add up exactly to the fee before its cap:
 * each exact part (energy and time of each period) is rounded down, and the cents the rounding
 * left over go to the parts with the largest remainders (largest-remainder method), so the sum of
 * the lines is the fee rounded half up once, as billed (contracts/billing/meter.ts).
 */
export function feeLines(m: Meter | null, t: Tariff): { lines: ReceiptLine[]; totalCents: number } {
  if (!m) return { lines: [], totalCents: 0 };
  const periods = periodInputs(t);
  const used = [...m.byPeriod.entries()].sort(([a], [b]) => a - b);
  const parts: Rational[] = [];
  for (const [idx, use] of used) {
    const p = t.periods[idx];
    if (!p) throw new RangeError(`meter refers to period ${idx} that tariff v${t.version} lacks`);
    parts.push(use.mwh.mul(new Rational(BigInt(p.energyCentsPerKwh), 1_000_000n)));
    parts.push(new Rational(BigInt(use.ms) * BigInt(p.timeCentsPerHour), 3_600_000n));
  }
  const exact = parts.reduce((a, b) => a.add(b), Rational.ZERO);
  const total = exact.roundHalfUp();
  const cents = parts.map((p) => p.floor());
  let left = total - cents.reduce((a, b) => a + b, 0n);
  const order = parts.map((p, i) => ({ i, rem: p.sub(new Rational(cents[i]!)) })).sort((a, b) => b.rem.cmp(a.rem) || a.i - b.i);
  for (const o of order) {
    if (left <= 0n) break;
    cents[o.i]! += 1n;
    left -= 1n;
  }
  const lines = used.map(([idx, use], k) => {
    const p = periods[idx]!;
    return {
      start: p.start,
      end: p.end,
      energyCentsPerKwh: p.energyCentsPerKwh,
      timeCentsPerHour: p.timeCentsPerHour,
      energyWh: Number(use.mwh.roundHalfUp()) / 1000,
      durationS: use.ms / 1000,
      energyCents: Number(cents[2 * k]),
      timeCents: Number(cents[2 * k + 1]),
    };
  });
  return { lines, totalCents: Number(total) };
}

export interface Receipt {
  sessionId: string;
  userId: string;
  terminalId: string;
  regionId: string;
  franchiseeId: string;
  state: "completed" | "failed";
  stopReason: string | null;
  tariffVersion: number;
  timezone: string;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  durationS: number;
  energyWh: number;
  lines: ReceiptLine[];
  /** feeCents − the lines' sum: 0, or negative when the session's money cap (amount target, prepaid hold, postpaid credit) cut the fee. */
  capAdjustmentCents: number;
  feeCents: number;
  payment: {
    method: "prepaid" | "postpaid";
    /** Prepaid: held at the start, captured (the fee) and released at the end. */
    heldCents: number;
    capturedCents: number;
    releasedCents: number;
    /** Postpaid: the fee as debt. */
    debtCents: number;
  };
  refunds: Pick<Refund, "refundId" | "amountCents" | "reason" | "createdAt">[];
  refundedCents: number;
  /** What the session cost in the end: feeCents − refundedCents. */
  netCents: number;
}

/** The receipt of an ended session (409 `session_not_ended` while it runs). */
export async function receiptOf(db: Q, s: SessionRow): Promise<Receipt> {
  if (s.state !== "completed" && s.state !== "failed") throw conflict("session_not_ended", `session ${s.sessionId} is ${s.state}; its receipt exists once it ends`);
  const tv = await tariffVersion(db, s.regionId, s.tariffVersion);
  const raw = await meterOfSession(db, s.sessionId);
  return buildReceipt(s, tv.tariff, raw, await ledgerOfSession(db, s.sessionId), await refundsOfSession(db, s.sessionId));
}

/** The receipt from its parts (the statement builds its sums from this too). */
export function buildReceipt(
  s: SessionRow,
  tariff: Tariff,
  rawMeter: unknown,
  ledger: { kind: string; balance: number; held: number; debt: number }[],
  refunds: Refund[],
): Receipt {
  const parsed = rawMeter ? meterJsonSchema.safeParse(rawMeter) : null;
  const { lines, totalCents } = feeLines(parsed?.success ? meterFromJson(parsed.data) : null, tariff);
  const sum = (kind: string, f: (e: { balance: number; held: number; debt: number }) => number) => ledger.filter((e) => e.kind === kind).reduce((a, e) => a + f(e), 0);
  const held = sum("hold", (e) => e.held);
  const captured = -sum("capture", (e) => e.balance);
  const refundedCents = refunds.reduce((a, r) => a + r.amountCents, 0);
  return {
    sessionId: s.sessionId,
    userId: s.userId,
    terminalId: s.terminalId,
    regionId: s.regionId,
    franchiseeId: s.franchiseeId,
    state: s.state as "completed" | "failed",
    stopReason: s.stopReason,
    tariffVersion: s.tariffVersion,
    timezone: tariff.timezone,
    createdAt: s.createdAt,
    startedAt: s.startedAt,
    endedAt: s.endedAt,
    durationS: s.durationMs / 1000,
    energyWh: s.energyMwh / 1000,
    lines,
    capAdjustmentCents: s.feeCents - totalCents,
    feeCents: s.feeCents,
    payment: {
      method: s.payment,
      heldCents: held,
      capturedCents: captured,
      releasedCents: held - captured,
      debtCents: sum("debt", (e) => e.debt),
    },
    refunds: refunds.map((r) => ({ refundId: r.refundId, amountCents: r.amountCents, reason: r.reason, createdAt: r.createdAt })),
    refundedCents,
    netCents: s.feeCents - refundedCents,
  };
}
