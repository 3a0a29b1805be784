import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { terminalInfoSchema, type TerminalInfo } from "../contracts/index.ts";
import { followBucket } from "./follow.ts";

/**
 * The processors' view of the registry: which terminals exist, on which gateway, with which
 * thresholds. Read from the KV bucket `<p>_terminals`, which the control service writes when a
 * terminal is registered or changed (and all of them at its start); a watch brings every change
 * here within a round trip, so a re-homed terminal's readings count from its new gateway at once.
 */
export interface TerminalDirectory {
  get(terminalId: string): TerminalInfo | undefined;
  /** Resolves once the bucket's current entries are loaded (before any reading is judged). */
  readonly ready: Promise<void>;
  stop(): void;
}

/** @param readyWithinMs a bucket that does not answer its first entries by then is taken as loaded (logged). */
export async function followDirectory(kv: KV, log: Logger, readyWithinMs = 10_000): Promise<TerminalDirectory> {
  const entries = new Map<string, TerminalInfo>();
  let loaded!: () => void;
  const ready = new Promise<void>((r) => (loaded = r));
  // The watch delivers the current entries first; the last of them (delta 0) or any later change
  // means they are all here. An empty bucket sends nothing, so ask how many there are.
  const w = await followBucket(kv, {
    log,
    what: "terminals",
    onEntry: (e) => {
      const t = e.operation === "PUT" && e.length ? terminalInfoSchema.safeParse(safeJson(e)) : null;
      if (t?.success) entries.set(e.key, t.data);
      else {
        if (t) log.warn({ key: e.key, issues: t.error.issues }, "ignoring an unreadable terminal entry");
        entries.delete(e.key);
      }
      if (e.isUpdate || e.delta === 0) loaded();
    },
  });
  if ((await kv.status()).values === 0) loaded();
  const timer = setTimeout(() => {
    log.warn({ readyWithinMs }, "terminal directory not loaded in time; judging readings with what arrived");
    loaded();
  }, readyWithinMs);
  void ready.then(() => clearTimeout(timer));
  return {
    get: (id) => entries.get(id),
    ready,
    stop() {
      clearTimeout(timer);
      w.stop();
    },
  };
}

function safeJson(e: { json<T>(): T }): unknown {
  try {
    return e.json();
  } catch {
    return null;
  }
}
