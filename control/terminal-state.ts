import type { NatsConnection } from "@nats-io/nats-core";
import type { Subjects } from "../contracts/index.ts";
import type { Buckets } from "../ingest/index.ts";
import { isOnline, readLive } from "../processors/index.ts";
import type { Db } from "./db.ts";
import { hasSafetyFault } from "./faults/store.ts";
import { liveSessionOfTerminal } from "./sessions/store.ts";

export type TerminalLiveState = "available" | "busy" | "offline" | "faulted" | "maintenance" | "retired";

export interface LiveDeps {
  db: Db;
  nc: NatsConnection;
  subjects: Subjects;
  buckets: Buckets;
  offlineMs: number;
}

/**
 * Whether a terminal can charge now, and if not the first reason a charge request would meet:
 * retired, in maintenance (both decided by people, whatever the telemetry says), offline, faulted,
 * busy. The charge page, the console and the admin page all show this one answer.
 */
export async function terminalLiveState(
  d: LiveDeps,
  t: { terminalId: string; retiredAt: number | null; maintenance: unknown },
  now: number,
): Promise<{ state: TerminalLiveState; lastReadingAt: number | null }> {
  const live = await readLive(d.buckets.live, t.terminalId, d);
  const lastReadingAt = live?.ts ?? null;
  if (t.retiredAt !== null) return { state: "retired", lastReadingAt };
  if (t.maintenance) return { state: "maintenance", lastReadingAt };
  if (!isOnline(live, now, d.offlineMs)) return { state: "offline", lastReadingAt };
  if (await hasSafetyFault(d.db, t.terminalId)) return { state: "faulted", lastReadingAt };
  if (await liveSessionOfTerminal(d.db, t.terminalId)) return { state: "busy", lastReadingAt };
  return { state: "available", lastReadingAt };
}
