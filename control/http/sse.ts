import { errors, type NatsConnection } from "@nats-io/nats-core";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Session, Subjects } from "../../contracts/index.ts";
import type { Metrics } from "../metrics.ts";

const ended = (s: { state: string }) => s.state === "completed" || s.state === "failed";

/** How long a new stream waits for the server to confirm its subscription: NATS away, it answers 503. */
const FLUSH_TIMEOUT_MS = 5000;

/** nc.flush() waits through a reconnect however long it takes; a request should not. */
async function flushWithin(nc: NatsConnection, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([nc.flush(), new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new errors.TimeoutError()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Server-sent events of one session: `session` (the whole session, on every state change) and
 * `progress` (energy, fee, time and power at each reading). Any control instance can serve it:
 * updates travel on NATS from whichever instance or processor made them. The stream ends after
 * the final state.
 */
export async function sessionEvents(
  req: FastifyRequest,
  reply: FastifyReply,
  o: { nc: NatsConnection; subjects: Subjects; metrics: Metrics; sessionId: string; load: () => Promise<Session> },
): Promise<void> {
  // Subscribed (and the server told) before the session is read: a change between the read and
  // the subscription would otherwise be lost, and a stream left waiting for an end already past
  // (seen: a refused handshake fails the session within milliseconds of its creation).
  const sub = o.nc.subscribe(o.subjects.sessionUpdates(o.sessionId));
  let initial: Session;
  try {
    await flushWithin(o.nc, FLUSH_TIMEOUT_MS);
    initial = await o.load();
  } catch (e) {
    sub.unsubscribe();
    throw e;
  }
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
  const write = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  o.metrics.sseClients.inc();
  const keepAlive = setInterval(() => res.write(": keep-alive\n\n"), 15_000);
  const close = () => {
    clearInterval(keepAlive);
    sub.unsubscribe();
    o.metrics.sseClients.dec();
    res.end();
  };
  req.raw.on("close", close);
  write("session", initial);
  if (ended(initial)) return close();
  for await (const m of sub) {
    const u = m.json<{ type: "session"; session: Session } | ({ type: "progress" } & Record<string, unknown>)>();
    if (u.type === "session") {
      write("session", u.session);
      if (ended(u.session)) break;
    } else {
      const { type: _t, ...progress } = u;
      write("progress", progress);
    }
  }
  req.raw.off("close", close);
  close();
}
