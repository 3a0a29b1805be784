import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { subjects as makeSubjects, type Session } from "../../contracts/index.ts";
import { sessionEvents, createMetrics, streamCounter } from "../../control/internal.ts";
import { newRegistry } from "../../control/index.ts";
import { NATS_URL, testPrefix } from "../helpers/env.ts";

// The session's event stream must not lose a change that happens while it reads the session: it
// subscribes first. Here the change is published from inside the read, the worst moment; a stream
// that subscribed after reading would wait forever for an end that already went by.
const s = makeSubjects(testPrefix());
let nc: NatsConnection;
let app: FastifyInstance;
let url: string;

const session = (state: Session["state"]): Session => ({
  sessionId: "S-1",
  userId: "U1",
  terminalId: "T1",
  state,
  target: { energyWh: 5 },
  payment: "prepaid",
  energyWh: 0,
  durationS: 0,
  feeCents: 0,
  heldCents: 0,
  stopReason: state === "failed" ? "handshake_failed" : null,
  createdAt: 1,
  startedAt: null,
  endedAt: state === "failed" ? 2 : null,
  tariffVersion: 1,
});

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  app = Fastify();
  const metrics = createMetrics(newRegistry(false));
  app.get("/events", async (req, reply) =>
    sessionEvents(req, reply, {
      nc,
      subjects: s,
      metrics,
      streams: streamCounter(10),
      key: "user:U1",
      sessionId: "S-1",
      load: async () => {
        // The session fails right now, while this reads it as it was a moment ago.
        nc.publish(s.sessionUpdates("S-1"), JSON.stringify({ type: "session", session: session("failed") }));
        await nc.flush();
        return session("authorizing");
      },
    }),
  );
  url = await app.listen({ port: 0, host: "127.0.0.1" });
});

afterAll(async () => {
  await app?.close();
  await nc?.close();
});

describe("the session event stream", () => {
  it("ends with a change made while it read the session", async () => {
    const res = await fetch(`${url}/events`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    const states = [...text.matchAll(/event: session\ndata: (.*)\n/g)].map((m) => (JSON.parse(m[1]!) as Session).state);
    expect(states).toEqual(["authorizing", "failed"]);
  });
});
