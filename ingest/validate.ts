import { whToMwh, type Reading } from "../contracts/index.ts";

/** What the writer remembers of a terminal's newest stored reading. */
export interface Mark {
  ts: number;
  seq: number;
  mwh: bigint;
}

export type Verdict = { ok: true; mark: Mark | null } | { ok: false; code: string; reason: string };

/**
 * Checks a reading against the terminal's newest stored one. The register never decreases, except
 * across a reboot, which shows as the sequence restarting (seq lower than before) at a later time.
 * A reading older than the newest is late, not wrong: stored, and the mark stays. Returns the new
 * mark when the reading is the newest.
 */
export function checkReading(last: Mark | undefined, r: Reading): Verdict {
  const mwh = whToMwh(r.energyWh);
  const mark = { ts: r.ts, seq: r.seq, mwh };
  if (!last || r.ts > last.ts) {
    const rebooted = last !== undefined && r.seq < last.seq;
    if (last && mwh < last.mwh && !rebooted)
      return {
        ok: false,
        code: "register_backwards",
        reason: `energyWh ${r.energyWh} is below the previous ${Number(last.mwh) / 1000} without a boot (seq ${r.seq} after ${last.seq})`,
      };
    return { ok: true, mark };
  }
  return { ok: true, mark: null };
}

/** A late reading's stored neighbours: the newest stored before it and the oldest stored after it. */
export interface Neighbours {
  before: { seq: number; mwh: bigint } | null;
  after: { seq: number; mwh: bigint } | null;
}

/**
 * Checks a late reading (older than the newest stored, as readings are when several writer
 * instances take a terminal's batches out of order) against its stored neighbours, with the rule
 * checkReading applies to the newest: a register never decreases within one boot. The one that
 * arrives later is the one refused, as it would be with a single writer in stream order.
 */
export function checkLate(n: Neighbours, r: Reading): Verdict {
  const mwh = whToMwh(r.energyWh);
  if (n.before && mwh < n.before.mwh && r.seq >= n.before.seq)
    return {
      ok: false,
      code: "register_backwards",
      reason: `energyWh ${r.energyWh} is below the previous ${Number(n.before.mwh) / 1000} without a boot (seq ${r.seq} after ${n.before.seq})`,
    };
  if (n.after && n.after.mwh < mwh && n.after.seq >= r.seq)
    return {
      ok: false,
      code: "register_backwards",
      reason: `energyWh ${r.energyWh} is above the next stored ${Number(n.after.mwh) / 1000} without a boot between (seq ${r.seq} before ${n.after.seq})`,
    };
  return { ok: true, mark: null };
}
