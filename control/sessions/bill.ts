import {
  advance,
  billedCents,
  deliveredMwh,
  exactFee,
  meterToJson,
  Rational,
  segments,
  startMeter,
  whToMwh,
  type Meter,
  type MeterJson,
  type Tariff,
} from "../../contracts/index.ts";

export interface Bill {
  energyMwh: number;
  endMwh: number;
  durationMs: number;
  feeCents: number;
  meter: MeterJson;
}

/**
 * The final bill of a session. Starts from the processor's meter when it is this session's (so
 * energy is attributed to periods at reading resolution), else from the power-on point; then
 * adds the stretch to the end point (the power-off acknowledgement), or stops at the last
 * register seen. Energy is always the register difference.
 */
export function finalBill(
  o: { sessionId: string; startedAt: number; startWh: number; capCents: number },
  tariff: Tariff,
  checkpoint: Meter | null,
  end: { ts: number; energyWh: number } | "last_seen",
): Bill {
  let m = checkpoint?.sessionId === o.sessionId ? checkpoint : startMeter(o.sessionId, o.startedAt, o.startWh);
  let endTs = m.lastTs;
  if (end !== "last_seen") {
    m = end.ts > m.lastTs ? advance(m, tariff, end.ts, end.energyWh) : addAtLast(m, tariff, end.energyWh);
    endTs = Math.max(end.ts, m.lastTs);
  }
  return {
    energyMwh: Number(deliveredMwh(m)),
    endMwh: Number(m.lastMwh),
    durationMs: endTs - m.startTs,
    feeCents: billedCents(exactFee(m, tariff), o.capCents),
    meter: meterToJson(m),
  };
}

/** An end register stamped no later than the last reading: its extra energy goes to that period. */
function addAtLast(m: Meter, t: Tariff, wh: number): Meter {
  const mwh = whToMwh(wh);
  if (mwh <= m.lastMwh) return m;
  const period = segments(t, m.lastTs, m.lastTs + 1)[0]!.period;
  const byPeriod = new Map(m.byPeriod);
  const prev = byPeriod.get(period) ?? { mwh: Rational.ZERO, ms: 0 };
  byPeriod.set(period, { mwh: prev.mwh.add(new Rational(mwh - m.lastMwh)), ms: prev.ms });
  return { ...m, lastMwh: mwh, byPeriod };
}

/**
 * The processor's checkpoint cut back to a stop the terminal stamped itself (its own limit): the
 * readings after the stop, with the relay open, still added their time to the checkpoint, and that
 * time is no session's. Only time can be taken back exactly; a checkpoint that also counted energy
 * past the stop's register is not used (null: the bill then runs from the power-on point).
 */
export function checkpointUpTo(checkpoint: Meter | null, tariff: Tariff, end: { ts: number; energyWh: number }): Meter | null {
  if (!checkpoint || checkpoint.lastTs <= end.ts) return checkpoint;
  if (checkpoint.lastMwh > whToMwh(end.energyWh) || end.ts < checkpoint.startTs) return null;
  const byPeriod = new Map(checkpoint.byPeriod);
  for (const s of segments(tariff, end.ts, checkpoint.lastTs)) {
    const prev = byPeriod.get(s.period);
    if (!prev || prev.ms < s.to - s.from) return null; // not a checkpoint this tariff built
    byPeriod.set(s.period, { mwh: prev.mwh, ms: prev.ms - (s.to - s.from) });
  }
  return { ...checkpoint, lastTs: end.ts, byPeriod };
}
