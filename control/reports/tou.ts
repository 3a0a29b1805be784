/** A suggested time-of-use period: local hours [start, end) of one kind. */
export interface SuggestedPeriod {
  start: string;
  end: string;
  kind: "peak" | "flat" | "valley";
}

const hhmm = (h: number) => `${String(h).padStart(2, "0")}:00`;

/**
 * Splits the day into peak, flat and valley periods from a 24-value curve (utilisation by local
 * hour): peak where the curve is in the upper half between its mean and its maximum, valley where
 * it is at most half its mean, flat between. Neighbouring hours of a kind are one period, and the
 * periods cover the day in order, as a tariff's do. A flat curve is all flat.
 */
export function suggestTimeOfUse(curve: number[]): SuggestedPeriod[] {
  if (curve.length !== 24) throw new RangeError("a curve has 24 values");
  const mean = curve.reduce((a, b) => a + b, 0) / 24;
  const max = Math.max(...curve);
  const peakFrom = mean + (max - mean) / 2;
  const kindOf = (u: number): SuggestedPeriod["kind"] => {
    if (max === 0 || max - Math.min(...curve) < 1e-9) return "flat";
    if (u >= peakFrom) return "peak";
    if (u <= mean / 2) return "valley";
    return "flat";
  };
  const out: SuggestedPeriod[] = [];
  curve.forEach((u, h) => {
    const kind = kindOf(u);
    const last = out.at(-1);
    if (last && last.kind === kind) last.end = hhmm(h + 1);
    else out.push({ start: hhmm(h), end: hhmm(h + 1), kind });
  });
  return out;
}
