import { z } from "zod";
import { Rational, whToMwh } from "./rational.ts";
import { segments, type Tariff } from "./tariff.ts";

/**
 * A session's meter: how much energy and time it used in each tariff period, built from register
 * differences between readings. Energy of an interval that crosses a period boundary is split in
 * proportion to time, exactly. Registers are integer mWh (see whToMwh).
 */
export interface Meter {
  sessionId: string;
  startTs: number;
  startMwh: bigint;
  lastTs: number;
  lastMwh: bigint;
  /** Per tariff period index. */
  byPeriod: Map<number, { mwh: Rational; ms: number }>;
}

export function startMeter(sessionId: string, startTs: number, startWh: number): Meter {
  const mwh = whToMwh(startWh);
  return { sessionId, startTs, startMwh: mwh, lastTs: startTs, lastMwh: mwh, byPeriod: new Map() };
}

/**
 * Adds the interval from the meter's last point to (ts, register). Points at or before the last one
 * are already counted (a redelivered or repeated reading) and change nothing. A register below the
 * last one adds no energy: registers never decrease, and one that does is a meter fault, not a refund.
 */
export function advance(m: Meter, t: Tariff, ts: number, wh: number): Meter {
  if (ts <= m.lastTs) return m;
  const mwh = whToMwh(wh);
  const delta = mwh > m.lastMwh ? mwh - m.lastMwh : 0n;
  const span = BigInt(ts - m.lastTs);
  const byPeriod = new Map(m.byPeriod);
  for (const s of segments(t, m.lastTs, ts)) {
    const len = s.to - s.from;
    const prev = byPeriod.get(s.period) ?? { mwh: Rational.ZERO, ms: 0 };
    byPeriod.set(s.period, { mwh: prev.mwh.add(new Rational(delta * BigInt(len), span)), ms: prev.ms + len });
  }
  return { ...m, lastTs: ts, lastMwh: delta > 0n ? mwh : m.lastMwh, byPeriod };
}

export function deliveredMwh(m: Meter): bigint {
  return m.lastMwh - m.startMwh;
}

export function elapsedMs(m: Meter): number {
  return m.lastTs - m.startTs;
}

/** Sum over periods of energy × energy price + time × time price, in exact cents. */
export function exactFee(m: Meter, t: Tariff): Rational {
  let fee = Rational.ZERO;
  for (const [idx, use] of m.byPeriod) {
    const p = t.periods[idx];
    if (!p) throw new RangeError(`meter refers to period ${idx} that tariff v${t.version} lacks`);
    fee = fee
      .add(use.mwh.mul(new Rational(BigInt(p.energyCentsPerKwh), 1_000_000n)))
      .add(new Rational(BigInt(use.ms) * BigInt(p.timeCentsPerHour), 3_600_000n));
  }
  return fee;
}

/** The fee as billed: rounded half up once, and never above the cap (amount target, hold or credit). */
export function billedCents(exact: Rational, capCents: number | null): number {
  const rounded = Number(exact.roundHalfUp());
  return capCents === null ? rounded : Math.min(rounded, capCents);
}

/** JSON form of a meter, for the key-value store the processor checkpoints into. */
export const meterJsonSchema = z.object({
  sessionId: z.string(),
  startTs: z.number(),
  startMwh: z.string(),
  lastTs: z.number(),
  lastMwh: z.string(),
  byPeriod: z.record(z.string(), z.object({ mwh: z.string(), ms: z.number() })),
});
export type MeterJson = z.infer<typeof meterJsonSchema>;

export function meterToJson(m: Meter): MeterJson {
  const byPeriod: MeterJson["byPeriod"] = {};
  for (const [k, v] of m.byPeriod) byPeriod[String(k)] = { mwh: v.mwh.toString(), ms: v.ms };
  return {
    sessionId: m.sessionId,
    startTs: m.startTs,
    startMwh: m.startMwh.toString(),
    lastTs: m.lastTs,
    lastMwh: m.lastMwh.toString(),
    byPeriod,
  };
}

export function meterFromJson(j: MeterJson): Meter {
  return {
    sessionId: j.sessionId,
    startTs: j.startTs,
    startMwh: BigInt(j.startMwh),
    lastTs: j.lastTs,
    lastMwh: BigInt(j.lastMwh),
    byPeriod: new Map(Object.entries(j.byPeriod).map(([k, v]) => [Number(k), { mwh: Rational.parse(v.mwh), ms: v.ms }])),
  };
}
