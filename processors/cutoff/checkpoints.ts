import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";

/**
 * The cutoff stage's checkpoint writes, off the cutoff's path: a unit of work records the newest
 * checkpoint (or its removal) per terminal here and goes on; the writer stores them, one put or
 * delete per terminal however many units changed it meanwhile, and retries what failed with the
 * newest record (never an older one over a newer). `stored()` says when everything recorded so far
 * is in the bucket: the consumer acknowledges a batch only then, so a checkpoint never trails an
 * acknowledged reading, while the next batch is already stepped (docs/scaling.md, "Where a
 * cutoff's time goes"). What a crash loses is redelivered, and a reading the checkpoint already
 * holds changes nothing.
 */
export interface CheckpointWriter {
  put(terminalId: string, record: string): void;
  delete(terminalId: string): void;
  /** Resolves once every record given so far is stored; rejects if the writer is stopped first. */
  stored(): Promise<void>;
  /** Tries to store what is waiting (bounded by `stopWaitMs`), then refuses the rest. */
  stop(): Promise<void>;
}

interface Waiter {
  generation: number;
  resolve(): void;
  reject(e: Error): void;
}

export function checkpointWriter(kv: KV, log: Logger, o: { retryMs?: number; stopWaitMs?: number } = {}): CheckpointWriter {
  /**
   * terminalId → the newest record not yet stored (null: remove the checkpoint), given at
   * `generation`; `since`: the first generation of this terminal not yet covered by a stored record.
   */
  const dirty = new Map<string, { record: string | null; generation: number; since: number }>();
  let generation = 0;
  /** Every record of a generation up to this one is stored. */
  let storedUpTo = 0;
  const waiters: Waiter[] = [];
  let running: Promise<void> | null = null;
  let stopped = false;
  let failures = 0;

  const settle = () => {
    // The oldest generation still dirty bounds what is stored; nothing dirty: all of it.
    let oldest = generation + 1;
    for (const d of dirty.values()) oldest = Math.min(oldest, d.since);
    storedUpTo = oldest - 1;
    for (let i = waiters.length - 1; i >= 0; i--)
      if (waiters[i]!.generation <= storedUpTo) {
        waiters[i]!.resolve();
        waiters.splice(i, 1);
      }
  };

  const flush = async () => {
    while (dirty.size > 0 && !stopped) {
      const taken = [...dirty.entries()];
      const results = await Promise.allSettled(
        taken.map(([id, d]) => (d.record === null ? kv.delete(id) : kv.put(id, d.record)).then(() => undefined)),
      );
      let failed: unknown = null;
      taken.forEach(([id, d], i) => {
        // Stored, and not changed since it was taken: done. Changed meanwhile: what was given up
        // to the stored one is covered, the newer one waits.
        if (results[i]!.status === "fulfilled") {
          const now = dirty.get(id);
          if (now === d) dirty.delete(id);
          else if (now) now.since = d.generation + 1;
        } else failed ??= (results[i] as PromiseRejectedResult).reason;
      });
      settle();
      if (failed !== null) {
        failures++;
        if (failures === 1 || failures % 30 === 0) log.warn({ err: failed, waiting: dirty.size, failures }, "meter checkpoints not stored; retrying");
        await new Promise((r) => setTimeout(r, Math.min((o.retryMs ?? 250) * failures, 2000)));
      } else failures = 0;
    }
  };
  const kick = () => {
    running ??= flush().finally(() => {
      running = null;
      if (dirty.size > 0 && !stopped) kick();
    });
  };

  const give = (terminalId: string, record: string | null) => {
    const g = ++generation;
    dirty.set(terminalId, { record, generation: g, since: dirty.get(terminalId)?.since ?? g });
    kick();
  };
  return {
    put: (terminalId, record) => give(terminalId, record),
    delete: (terminalId) => give(terminalId, null),
    stored() {
      if (stopped) return Promise.reject(new Error("checkpoint writer stopped"));
      // Everything given is stored (storedUpTo only reaches the newest generation once nothing is dirty).
      if (storedUpTo >= generation) return Promise.resolve();
      return new Promise<void>((resolve, reject) => waiters.push({ generation, resolve, reject }));
    },
    async stop() {
      // What is dirty is being stored (the flush runs while anything is): wait for it, for a while.
      if (dirty.size > 0) {
        const deadline = new Promise((r) => setTimeout(r, o.stopWaitMs ?? 5000).unref());
        await Promise.race([new Promise<void>((resolve) => waiters.push({ generation, resolve, reject: () => resolve() })), deadline]);
      }
      stopped = true;
      for (const w of waiters.splice(0)) w.reject(new Error("checkpoint writer stopped with checkpoints not stored"));
    },
  };
}
