import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import { kvFirstOf } from "../ingest/index.ts";

export interface Following {
  stop(): void;
  /** Resolves when following has stopped (after `stop()`). */
  readonly done: Promise<void>;
}

/**
 * Follows every change of a KV bucket for as long as the process runs. A watch is an ordered
 * consumer that nats.js gives up on (its iterator simply ends, without an error) after a long
 * enough NATS outage; the arms and the registry would then stop reaching the processors without
 * a word. So a watch that ends while we still follow is made again from the revision after the
 * last one seen: every change made in between is delivered, in order, none twice.
 */
export async function followBucket(
  kv: KV,
  o: { log: Logger; what: string; onEntry: (e: KvWatchEntry) => void | Promise<void>; retryMs?: number; maxRetryMs?: number },
): Promise<Following> {
  let stopped = false;
  let last = 0;
  // A watch's consumer may be placed on a server that just died (ingest/first-of.ts).
  const watchFrom = (opts: Parameters<KV["watch"]>[0]) => kvFirstOf(() => kv.watch(opts));
  let w = await watchFrom({});
  const first = o.retryMs ?? 500;
  const done = (async () => {
    for (;;) {
      try {
        for await (const e of w) {
          last = e.revision;
          await o.onEntry(e);
        }
      } catch (err) {
        o.log.warn({ err, bucket: o.what }, "watch failed");
      }
      if (stopped) return;
      o.log.warn({ bucket: o.what, revision: last }, "watch ended; following again from the next revision");
      for (let delay = first; ; delay = Math.min(delay * 2, o.maxRetryMs ?? 5000)) {
        await new Promise((r) => setTimeout(r, delay));
        if (stopped) return;
        try {
          w = await watchFrom(last > 0 ? { resumeFromRevision: last + 1 } : {});
          break;
        } catch (err) {
          o.log.warn({ err, bucket: o.what }, "watch could not be made again; retrying");
        }
      }
    }
  })();
  return {
    done,
    stop() {
      stopped = true;
      w.stop();
    },
  };
}
