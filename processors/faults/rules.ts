import type { Reading } from "../../contracts/index.ts";

/** The fault kinds the processor detects from telemetry (scan_failure comes from users, over HTTP). */
export const readingFaultKinds = [
  "on_current_out_of_range",
  "off_current_leak",
  "voltage_out_of_range",
  "power_mismatch",
  "register_backwards",
  "relay_on_without_session",
] as const;
export type ReadingFaultKind = (typeof readingFaultKinds)[number];
export type FaultKind = ReadingFaultKind | "terminal_offline" | "scan_failure";

const knownKinds: ReadonlySet<string> = new Set<FaultKind>([...readingFaultKinds, "terminal_offline", "scan_failure"]);

/**
 * The kinds of a checkpoint's open list that this release knows, once each. A checkpoint is read
 * back from a KV bucket that outlives releases: a kind written by a newer release (or damaged) is
 * dropped, and named so it can be logged, rather than restored as an open track that could never
 * be resolved and would be written back forever.
 */
export function restorableKinds(open: readonly string[]): { kinds: FaultKind[]; unknown: string[] } {
  const kinds = new Set<FaultKind>();
  const unknown: string[] = [];
  for (const k of open) {
    if (knownKinds.has(k)) kinds.add(k as FaultKind);
    else unknown.push(k);
  }
  return { kinds: [...kinds], unknown };
}

/** Thresholds, from the terminal's profile (protocol defaults where it sets none). */
export interface FaultProfile {
  onCurrentA: [number, number];
  offCurrentMaxA: number;
  voltageV: [number, number];
  faultDebounceS: number;
  faultClearS: number;
}

export type Evidence = Record<string, unknown>;

/**
 * Which fault conditions one reading shows, with the evidence for each. Pure: the previous reading
 * (for the register) and whether a session is armed on the terminal are inputs.
 */
export function conditions(p: FaultProfile, r: Reading, prev: Reading | undefined, sessionActive: boolean): Map<ReadingFaultKind, Evidence> {
  const out = new Map<ReadingFaultKind, Evidence>();
  const [lo, hi] = p.onCurrentA;
  if (r.state === "on" && (r.currentA < lo || r.currentA > hi)) out.set("on_current_out_of_range", { currentA: r.currentA, rangeA: [lo, hi] });
  if (r.state === "off" && r.currentA > p.offCurrentMaxA) out.set("off_current_leak", { currentA: r.currentA, maxA: p.offCurrentMaxA });
  const [vlo, vhi] = p.voltageV;
  if (r.voltageV < vlo || r.voltageV > vhi) out.set("voltage_out_of_range", { voltageV: r.voltageV, rangeV: [vlo, vhi] });
  if (r.powerW !== undefined) {
    const vi = r.voltageV * r.currentA;
    // A meter's power and V×I differ by rounding and power factor; 10% or 50 W is a fault.
    if (Math.abs(r.powerW - vi) > Math.max(50, 0.1 * vi)) out.set("power_mismatch", { powerW: r.powerW, vTimesIW: Math.round(vi * 10) / 10 });
  }
  if (prev && r.ts > prev.ts && r.energyWh < prev.energyWh && r.seq > prev.seq)
    out.set("register_backwards", { energyWh: r.energyWh, previousWh: prev.energyWh });
  if (r.state === "on" && !sessionActive) out.set("relay_on_without_session", { state: "on" });
  return out;
}

/** Over-current during a session cuts power at once, without waiting for the debounce. */
export function overCurrent(p: FaultProfile, r: Reading): boolean {
  return r.state === "on" && r.currentA > p.onCurrentA[1];
}
