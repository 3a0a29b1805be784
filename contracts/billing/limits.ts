import { Rational, whToMwh } from "./rational.ts";
import { maxPrices, type Tariff } from "./tariff.ts";
import type { Target } from "../http.ts";

/** What `power_on` carries: the terminal's own stop, for when the cloud cannot reach it. */
export interface TerminalLimits {
  /** Energy since power-on, Wh with at most 3 decimals; absent when energy costs nothing and the target is no energy. */
  limitWh?: number;
  /** Seconds since power-on. */
  limitS: number;
}

/**
 * The terminal's own limits for a session: never past the target, and never more than the
 * session's money cap (`capCents`: the prepaid hold, the amount, or the postpaid credit reserved)
 * pays for at the highest prices of the tariff version.
 *
 * The terminal stops at whichever limit comes first, so what it can deliver is a rectangle of
 * energy × time whose corner costs `limitWh × highest energy price + limitS × highest time price`.
 * Each side first asks what its target needs (an energy target: its energy and the longest session
 * of time; a duration target: its time and the energy of `maxPowerW` over it; an amount target:
 * unbounded energy and the longest session). When the cap pays for both, those are the limits.
 * Otherwise the cap is shared: a side that needs at most half of it gets what it needs, the other
 * side the rest; when both need more, half each. A side whose price is 0 needs nothing. Exact
 * arithmetic, rounded down to whole mWh and seconds, at least 1 of each.
 */
export function terminalLimits(
  target: Target,
  capCents: number,
  t: Tariff,
  o: { maxSessionS: number; maxPowerW: number },
): TerminalLimits {
  const p = maxPrices(t);
  const e = BigInt(p.energyCentsPerKwh);
  const tp = BigInt(p.timeCentsPerHour);
  const maxS = BigInt(o.maxSessionS);

  const targetS = "durationS" in target ? min(BigInt(target.durationS), maxS) : maxS;
  const targetMwh: bigint | null = "energyWh" in target ? atLeast1(whToMwh(target.energyWh)) : null;
  // mWh × c/kWh / 10⁶ = cents; s × c/h / 3600 = cents.
  const timeNeed = new Rational(targetS * tp, 3600n);
  const energyNeed: Rational | null =
    e === 0n
      ? Rational.ZERO
      : targetMwh !== null
        ? new Rational(targetMwh * e, 1_000_000n)
        : "durationS" in target
          ? new Rational(BigInt(Math.ceil(o.maxPowerW * 1000)) * targetS * e, 3600n * 1_000_000n)
          : null; // an amount target: energy without bound
  const cap = Rational.of(capCents);
  const own: TerminalLimits = { limitS: Number(targetS), ...(targetMwh !== null ? { limitWh: mwh(targetMwh) } : {}) };
  if (energyNeed !== null && energyNeed.add(timeNeed).cmp(cap) <= 0) return own;

  const half = new Rational(BigInt(capCents), 2n);
  const timeBudget =
    timeNeed.cmp(half) <= 0 ? timeNeed : energyNeed !== null && energyNeed.cmp(half) <= 0 ? cap.sub(energyNeed) : half;
  const energyBudget = cap.sub(timeBudget);
  const limitS = tp === 0n ? targetS : min(targetS, atLeast1(timeBudget.mul(new Rational(3600n, tp)).floor()));
  const out: TerminalLimits = { limitS: Number(limitS) };
  if (e > 0n) {
    const fit = atLeast1(energyBudget.mul(new Rational(1_000_000n, e)).floor());
    out.limitWh = mwh(targetMwh !== null ? min(targetMwh, fit) : fit);
  } else if (targetMwh !== null) {
    out.limitWh = mwh(targetMwh);
  }
  return out;
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);
/** A zero limit would mean "no power"; the request's minimum target keeps real caps above it. */
const atLeast1 = (x: bigint) => (x < 1n ? 1n : x);
const mwh = (x: bigint) => Number(x) / 1000;
