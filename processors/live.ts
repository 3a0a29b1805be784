import type { KV } from "@nats-io/kv";
import { z } from "zod";
import type { Reading } from "../contracts/index.ts";

export const liveSchema = z.object({
  terminalId: z.string(),
  gatewayId: z.string(),
  ts: z.number(),
  seenAt: z.number(),
  state: z.enum(["on", "off"]),
  currentA: z.number(),
  voltageV: z.number(),
  energyWh: z.number(),
});
/** A terminal's last reading, as the control service needs it (offline checks, live state). */
export type Live = z.infer<typeof liveSchema>;

/**
 * Keeps the live bucket current without writing every reading: a terminal's entry is rewritten
 * when its relay changes or its entry is older than its refresh period, so "seen at" is at most
 * `everyMs` stale. Each terminal's period is its own, between half and all of `everyMs` (from its
 * id), so a fleet that came up together does not rewrite all its entries in the same instant
 * (measured: a burst of 1000 puts every 5 s was the fault detection latency's p99).
 */
export function liveWriter(kv: KV, everyMs = 5000) {
  const written = new Map<string, { at: number; state: string; ts: number; period: number }>();
  const periodOf = (terminalId: string) => {
    let h = 0;
    for (let i = 0; i < terminalId.length; i++) h = (h * 31 + terminalId.charCodeAt(i)) >>> 0;
    return everyMs / 2 + (h % (everyMs / 2));
  };
  return {
    note(gatewayId: string, terminalId: string, r: Reading, seenAt: number): Promise<unknown> | null {
      const w = written.get(terminalId);
      // Never back in time, and not more often than needed. Time here is arrival (the stream's
      // clock; reading time only within one message): a redelivered message arrived earlier, and a
      // reading dated ahead of the real ones must not keep them out (and the terminal "offline").
      if (w && (seenAt < w.at || (seenAt === w.at && r.ts <= w.ts) || (w.state === r.state && seenAt - w.at < w.period))) return null;
      const entry = { at: seenAt, state: r.state, ts: r.ts, period: w?.period ?? periodOf(terminalId) };
      written.set(terminalId, entry);
      const live: Live = {
        terminalId,
        gatewayId,
        ts: r.ts,
        seenAt,
        state: r.state,
        currentA: r.currentA,
        voltageV: r.voltageV,
        energyWh: r.energyWh,
      };
      // Not written: the next reading tries again rather than wait out the period.
      return kv.put(terminalId, JSON.stringify(live)).catch((err) => {
        if (written.get(terminalId) === entry) written.delete(terminalId);
        throw err;
      });
    },
  };
}

/** Whether a terminal with this live entry counts as online at `now`: seen within `offlineMs`. */
export function isOnline(live: Live | null, now: number, offlineMs: number): live is Live {
  return live !== null && now - live.seenAt <= offlineMs;
}

export async function readLive(kv: KV, terminalId: string): Promise<Live | null> {
  const e = await kv.get(terminalId);
  if (!e || e.operation !== "PUT" || e.length === 0) return null;
  const p = liveSchema.safeParse(e.json());
  return p.success ? p.data : null;
}
