import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { subjects } from "../../contracts/index.ts";
import { ensureTopology, type Buckets } from "../../ingest/index.ts";
import { startProcessorHost, type StageContext } from "../../processors/index.ts";
import { natsServer, type TestNatsServer } from "../helpers/nats-server.ts";
import { until } from "../helpers/platform.ts";

// The silence rule ("cut a session whose terminal is silent, once caught up") trusts the host's
// pending(). During a consumer leader's election, or behind a server that hangs, the client stays
// connected, hears nothing, and the last pending count it saw (0) would say "caught up" while the
// readings wait in the stream: the cluster takeover test saw sessions cut `terminal_offline` so.
// A consumer silent for more than 3 s (heartbeats come every second) is not caught up.

let server: TestNatsServer;
let nc: NatsConnection;
let buckets: Buckets;
const s = subjects("quiet");

beforeAll(async () => {
  server = await natsServer();
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  buckets = await ensureTopology(nc, s, { maxBytes: 8 * 2 ** 20, telemetryMaxAgeDays: 1 });
}, 30_000);
afterAll(async () => {
  server?.resume();
  await nc?.close();
  await server?.stop();
});

describe("the processor host's pending()", () => {
  it("is 0 once caught up, infinite while its consumer hears nothing for more than 3 s though connected, and 0 again after", async () => {
    let ctx: StageContext | undefined;
    const host = await startProcessorHost({
      nc,
      subjects: s,
      log: pino({ level: "silent" }),
      clock: Date.now,
      durable: s.consumer("quiet_test"),
      terminals: buckets.terminals,
      stages: [
        async (c) => {
          ctx = c;
          return { handle: async () => {}, stop: async () => {} };
        },
      ],
    });
    try {
      // Heartbeats and answers to pulls keep an idle consumer "heard": caught up.
      await until(async () => ctx!.pending() === 0, 10_000, 50);
      server.pause();
      const pausedAt = Date.now();
      await until(async () => ctx!.pending() === Number.POSITIVE_INFINITY, 15_000, 100);
      // Not before the 3 s of quiet: a heartbeat missed by a moment is no silence.
      expect(Date.now() - pausedAt).toBeGreaterThanOrEqual(2500);
      expect(nc.isClosed()).toBe(false);
      server.resume();
      await until(async () => ctx!.pending() === 0, 20_000, 100);
    } finally {
      server.resume();
      await host.stop();
    }
  }, 60_000);
});
