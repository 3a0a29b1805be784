import type { Logger } from "pino";
import { RetryBackoff } from "../ingest/index.ts";

/**
 * Runs `round` every `everyMs`, never two at once: a slow round is not overlapped by the next, it
 * is skipped. A failed round is logged and the next goes on after a back-off (doubling from
 * `everyMs`, at most max(everyMs, 5 s)): a round that fails because PostgreSQL or NATS is down
 * neither crashes the process nor hammers the server, and resumes by itself when it is back.
 * `stop()` waits for the round in hand; `stopped` lets a long round end early.
 */
export function everyRound(everyMs: number, round: () => Promise<void>, o: { log: Logger; what: string }) {
  let running: Promise<void> | null = null;
  let stopped = false;
  let resumeAt = 0;
  const backoff = new RetryBackoff(o.log, o.what, { baseMs: everyMs, maxMs: Math.max(everyMs, 5000) });
  const timer = setInterval(() => {
    if (running || stopped || Date.now() < resumeAt) return;
    running = round()
      .then(
        () => backoff.succeeded(),
        (err: unknown) => {
          // The interval itself is the first wait: back off only beyond it.
          resumeAt = Date.now() + backoff.failed(err) - everyMs;
        },
      )
      .finally(() => (running = null));
  }, everyMs);
  return {
    get stopped() {
      return stopped;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
