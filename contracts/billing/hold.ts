import { Rational, whToMwh } from "./rational.ts";
import { maxPrices, type Tariff } from "./tariff.ts";
import type { Target } from "../http.ts";

/**
 * The most a target can cost at the highest prices in force: what a prepaid request holds.
 * Energy targets may run up to maxSessionS, duration targets at up to maxPowerW; rounded up,
 * so the hold always covers the fee, and never less than 1 cent: no session switches power on
 * with nothing held (prepaid) or a cap of nothing (postpaid), not even on a free tariff.
 */
export function maxCostCents(target: Target, t: Tariff, o: { maxSessionS: number; maxPowerW: number }): number {
  if ("amountCents" in target) return Math.max(1, target.amountCents);
  const p = maxPrices(t);
  const energyPrice = new Rational(BigInt(p.energyCentsPerKwh), 1000n); // cents per Wh
  const timePrice = new Rational(BigInt(p.timeCentsPerHour), 3600n); // cents per s
  let cost: Rational;
  if ("energyWh" in target) {
    cost = new Rational(whToMwh(target.energyWh), 1000n).mul(energyPrice).add(Rational.of(o.maxSessionS).mul(timePrice));
  } else {
    const wh = new Rational(BigInt(o.maxPowerW) * BigInt(target.durationS), 3600n);
    cost = wh.mul(energyPrice).add(Rational.of(target.durationS).mul(timePrice));
  }
  return Math.max(1, Number(cost.ceil()));
}
