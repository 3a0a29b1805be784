import { Socket } from "node:net";
import { afterAll, beforeAll } from "vitest";
import { parseInt8AsNumber } from "../../control/index.ts";

// Run in each test file's process before the file (vitest's setupFiles).

// What each entry point does at start (cli/main.ts): int8 columns parse to exact numbers.
parseInt8AsNumber();

/**
 * A test file that leaves a connection open (a pool not ended, a NATS connection not closed, a
 * platform not stopped) fails: the leak would hold the shared servers' connections for the rest of
 * the run, and hides a missing `await using` or afterAll. Counted as the TCP connections this
 * process opened during the file and still has open after the file's own afterAll hooks (this one
 * is registered first, so it runs last), with a short grace for closes under way.
 */
const LEAK_GRACE_MS = 5_000;

const openConnections = (): Socket[] =>
  (process as unknown as { _getActiveHandles(): unknown[] })
    ._getActiveHandles()
    .filter((h): h is Socket => h instanceof Socket && !h.destroyed && h.remotePort !== undefined);

let before = new Set<Socket>();
beforeAll(() => {
  before = new Set(openConnections());
});

afterAll(async () => {
  const end = Date.now() + LEAK_GRACE_MS;
  let leaked: Socket[] = [];
  for (;;) {
    leaked = openConnections().filter((s) => !before.has(s));
    if (leaked.length === 0 || Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (leaked.length > 0) {
    const peers = leaked.map((s) => `${s.localPort} → ${s.remoteAddress}:${s.remotePort}`).join(", ");
    throw new Error(`the test file leaves ${leaked.length} connection(s) open (a pool, a NATS connection or a platform not closed): ${peers}`);
  }
}, LEAK_GRACE_MS + 5_000);
