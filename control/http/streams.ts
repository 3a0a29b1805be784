import { rateLimited } from "../errors.ts";

/**
 * Counts the open event streams (SSE) of each principal in this control instance, and refuses one
 * past `max` with 429 `rate_limited`: each stream holds a socket and a NATS subscription or
 * JetStream consumer for as long as its client stays.
 */
export function streamCounter(max: number) {
  const open = new Map<string, number>();
  return {
    max,
    /** Takes a slot for `key` (throws 429 when none is left); the returned release is idempotent. */
    take(key: string): () => void {
      const n = open.get(key) ?? 0;
      if (n >= max) throw rateLimited(`at most ${max} event streams may be open at once for one principal; close one first`);
      open.set(key, n + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (open.get(key) ?? 1) - 1;
        if (left > 0) open.set(key, left);
        else open.delete(key);
      };
    },
    /** Open streams of `key`, for tests and metrics. */
    count: (key: string) => open.get(key) ?? 0,
  };
}
export type StreamCounter = ReturnType<typeof streamCounter>;
