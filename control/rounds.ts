/**
 * Runs `round` every `everyMs`, never two at once: a slow round is not overlapped by the next, it
 * is skipped. A failed round is reported and the next goes on. `stop()` waits for the round in
 * hand; `stopped` lets a long round end early.
 */
export function everyRound(everyMs: number, round: () => Promise<void>, onError: (err: unknown) => void) {
  let running: Promise<void> | null = null;
  let stopped = false;
  const timer = setInterval(() => {
    if (running || stopped) return;
    running = round()
      .catch(onError)
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
