/**
 * The first of up to `tries` tries of `make` to succeed. A try still unanswered after `patienceMs`
 * is left running and another starts beside it; one that fails at once is followed by the next
 * after a short pause. Tries that succeed after the winner are handed to `discard`.
 *
 * Why: on a nats-server 2.9 cluster, the ordered consumer behind a KV watch or key listing is an
 * ephemeral R1 consumer, and for tens of seconds after a server is killed the cluster may still
 * place one on the dead server (it is not yet known offline). Its creation then waits out the whole
 * request timeout (5 s) and fails; a second try is placed elsewhere (measured in the cluster
 * takeover test: a partition's start failed this way five to ten times in a row).
 */
export function firstOf<T>(make: () => Promise<T>, o: { patienceMs: number; tries: number; discard(late: T): void }): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let started = 0;
    let failed = 0;
    let timer: NodeJS.Timeout | undefined;
    const next = () => {
      clearTimeout(timer);
      if (settled || started >= o.tries) return;
      started++;
      make().then(
        (v) => {
          if (settled) return o.discard(v);
          settled = true;
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          if (settled) return;
          failed++;
          if (failed >= o.tries) {
            settled = true;
            reject(err);
          } else if (failed === started) {
            // Nothing else in flight: the next try after a pause (an election answers "unavailable" at once).
            clearTimeout(timer);
            timer = setTimeout(next, Math.min(o.patienceMs, 250));
          }
        },
      );
      if (started < o.tries) timer = setTimeout(next, o.patienceMs);
    };
    next();
  });
}

/**
 * A KV listing or watch (an ordered consumer underneath) made with firstOf's retry: a second try
 * after 0.5 s beside a hung one, five at most, the late ones stopped. The one policy for every
 * KV listing or watch the processors and control make.
 */
export function kvFirstOf<T extends { stop(): unknown }>(make: () => Promise<T>): Promise<T> {
  return firstOf(make, { patienceMs: 500, tries: 5, discard: (late) => late.stop() });
}
