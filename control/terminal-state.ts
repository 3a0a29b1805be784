import type { Db } from "./db.ts";
import { hasSafetyFault } from "./faults/store.ts";
import { isOnline, type LiveReader } from "./live.ts";
import { liveSessionOfTerminal } from "./sessions/store.ts";

export type TerminalLiveState = "available" | "busy" | "offline" | "faulted" | "maintenance" | "retired";

export interface LiveDeps {
  db: Db;
  /** The terminal's last reading, from the telemetry stream (control/live.ts). */
  live: LiveReader;
  offlineMs: number;
}

/**
 * Whether a terminal can charge now, and if not the first reason a charge request would meet:
 * retired, in maintenance (both decided by people, whatever the telemetry says), offline, faulted,
 * busy. The charge page, the console and the admin page all show this one answer.
 */
export async function terminalLiveState(
  d: LiveDeps,
  t: { terminalId: string; gatewayId: string; retiredAt: number | null; maintenance: unknown },
  now: number,
): Promise<{ state: TerminalLiveState; lastReadingAt: number | null }> {
  const live = await d.live.read(t.terminalId, t.gatewayId, now);
  const lastReadingAt = live?.ts ?? null;
  if (t.retiredAt !== null) return { state: "retired", lastReadingAt };
  if (t.maintenance) return { state: "maintenance", lastReadingAt };
  if (!isOnline(live, now, d.offlineMs)) return { state: "offline", lastReadingAt };
  if (await hasSafetyFault(d.db, t.terminalId)) return { state: "faulted", lastReadingAt };
  if (await liveSessionOfTerminal(d.db, t.terminalId)) return { state: "busy", lastReadingAt };
  return { state: "available", lastReadingAt };
}
