import {
  deliveredMwh,
  elapsedMs,
  exactFee,
  Rational,
  whToMwh,
  type Arm,
  type Cutoff,
  type Meter,
  type Tariff,
} from "../../contracts/index.ts";

/**
 * Whether a session must be cut now, from its meter alone. Targets first (the user asked for
 * exactly this), then the money cap: the amount target, the prepaid hold or the postpaid credit.
 * `prevFee` is the exact fee at the previous reading; with `capLookahead` the cut comes one
 * reading early when the next interval at the same rate would pass the cap.
 */
export function decideCutoff(arm: Arm, tariff: Tariff, meter: Meter, prevFee: Rational): Cutoff["reason"] | null {
  const t = arm.target;
  if ("energyWh" in t && deliveredMwh(meter) >= whToMwh(t.energyWh)) return "target_reached";
  if ("durationS" in t && elapsedMs(meter) >= t.durationS * 1000) return "target_reached";
  const fee = exactFee(meter, tariff);
  if ("amountCents" in t && fee.cmp(Rational.of(t.amountCents)) >= 0) return "target_reached";
  // A cap of 0 comes only from a free tariff (no price, no hold): nothing to exhaust.
  if (arm.capCents === 0) return null;
  const cap = Rational.of(arm.capCents);
  if (fee.cmp(cap) >= 0) return "credit_exhausted";
  if (arm.capLookahead && fee.add(fee.sub(prevFee)).cmp(cap) > 0) return "credit_exhausted";
  return null;
}
