import { errors, type NatsConnection } from "@nats-io/nats-core";
import { DeliverPolicy, jetstream, type Consumer, type ConsumerMessages } from "@nats-io/jetstream";
import type { FastifyReply, FastifyRequest } from "fastify";
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { Session, Subjects } from "../../contracts/index.ts";
import type { Metrics } from "../metrics.ts";
import type { StreamCounter } from "./streams.ts";

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

/** A client that reads this far behind is dropped (it reconnects, with Last-Event-ID where it has one). */
const MAX_BUFFERED_BYTES = 1 << 20;
const KEEP_ALIVE_MS = 15_000;
/** A fault stream's consumer left behind (its delete failed) goes after this long without pulls. */
const ORPHAN_CONSUMER_MS = 120_000;

/**
 * The parts every event stream shares: a slot of the principal's stream cap (taken first, so a
 * stream past the cap answers 429 before anything is made), and one cleanup that runs exactly
 * once whether the stream ends, fails or its client goes (also abruptly, and also while the
 * stream is still being set up: then `gone()` says so and what was made is undone at once).
 */
function eventStream(req: FastifyRequest, reply: FastifyReply, o: { metrics: Metrics; streams: StreamCounter; key: string }) {
  const release = o.streams.take(o.key);
  const res: ServerResponse = reply.raw;
  const undo: (() => unknown)[] = [];
  let closed = false;
  let started = false;
  let keepAlive: NodeJS.Timeout | undefined;
  /** `abort`: drop the connection rather than end the stream (what is buffered is not waited for). */
  const close = async (abort = false) => {
    if (closed) return;
    closed = true;
    res.off("close", onClose);
    clearInterval(keepAlive);
    release();
    if (started) o.metrics.sseClients.dec();
    for (const u of undo.reverse()) {
      try {
        await u();
      } catch (err) {
        req.log.warn({ err }, "event stream cleanup failed");
      }
    }
    if (abort) res.destroy();
    else if (started && !res.writableEnded) res.end();
  };
  const onClose = () => void close();
  res.on("close", onClose);
  if (res.destroyed) void close();
  return {
    /** Something to undo when the stream closes (run in reverse order). */
    onClose: (u: () => unknown) => (closed ? void u() : void undo.push(u)),
    gone: () => closed,
    started: () => started,
    close: () => close(),
    /** Switches the reply to an event stream. */
    start() {
      reply.hijack();
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
      started = true;
      o.metrics.sseClients.inc();
      keepAlive = setInterval(() => res.write(": keep-alive\n\n"), KEEP_ALIVE_MS);
    },
    /** Writes one event; false when the client is gone or too far behind (the stream then closes). */
    write(chunk: string): boolean {
      if (closed) return false;
      res.write(chunk);
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        req.log.warn({ bytes: res.writableLength }, "event stream client too slow; dropped");
        void close(true);
        return false;
      }
      return true;
    },
  };
}

/** Before the stream starts an error answers as usual; after, it is logged and the stream ends. */
async function guarded(req: FastifyRequest, s: ReturnType<typeof eventStream>, body: () => Promise<void>) {
  try {
    await body();
  } catch (err) {
    const started = s.started();
    await s.close();
    if (!started) throw err;
    req.log.warn({ err }, "event stream ended by an error");
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
  rep: FastifyReply,
  o: { nc: NatsConnection; subjects: Subjects; metrics: Metrics; streams: StreamCounter; key: string; sessionId: string; load: () => Promise<Session> },
): Promise<void> {
  const s = eventStream(req, rep, o);
  await guarded(req, s, async () => {
    // Subscribed (and the server told) before the session is read: a change between the read and
    // the subscription would otherwise be lost, and a stream left waiting for an end already past
    // (seen: a refused handshake fails the session within milliseconds of its creation).
    const sub = o.nc.subscribe(o.subjects.sessionUpdates(o.sessionId));
    s.onClose(() => sub.unsubscribe());
    await flushWithin(o.nc, FLUSH_TIMEOUT_MS);
    const initial = await o.load();
    if (s.gone()) return;
    s.start();
    const write = (event: string, data: unknown) => s.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    if (!write("session", initial) || ended(initial)) return s.close();
    for await (const m of sub) {
      const u = m.json<{ type: "session"; session: Session } | ({ type: "progress" } & Record<string, unknown>)>();
      if (u.type === "session") {
        if (!write("session", u.session) || ended(u.session)) break;
      } else {
        const { type: _t, ...progress } = u;
        if (!write("progress", progress)) break;
      }
    }
    await s.close();
  });
}

/**
 * Server-sent events of a franchisee's faults as they open, repeat, are acknowledged and resolve,
 * read from the faults stream filtered to this franchisee. Each event's id is its stream sequence:
 * a client that reconnects with Last-Event-ID gets everything it missed; a new one first gets its
 * unresolved faults (`snapshot`), then changes. Each stream reads through its own ordered consumer,
 * deleted when the client goes (the server would otherwise keep it for its inactivity threshold,
 * 5 minutes: 1000 short visits left 1000 consumers behind).
 */
export async function faultEvents(
  req: FastifyRequest,
  rep: FastifyReply,
  o: {
    nc: NatsConnection;
    subjects: Subjects;
    metrics: Metrics;
    streams: StreamCounter;
    franchiseeId: string;
    lastEventId: number | null;
    snapshot: () => Promise<unknown[]>;
    toEvent: (data: Uint8Array) => string;
  },
): Promise<void> {
  const s = eventStream(req, rep, { ...o, key: `franchisee:${o.franchiseeId}` });
  await guarded(req, s, async () => {
    // The ordered consumer is made on the server here. It is deleted when the client goes; the
    // inactivity threshold only covers a delete that could not happen (NATS away, process killed).
    const consumer: Consumer = await jetstream(o.nc).consumers.get(o.subjects.streams.faults, {
      // Named for whom it serves, and unique: two streams on one name would share one consumer.
      name_prefix: `${o.subjects.prefix}_sse_${o.franchiseeId}_${randomBytes(6).toString("hex")}`,
      filter_subjects: o.subjects.fault(o.franchiseeId, "*"),
      inactive_threshold: ORPHAN_CONSUMER_MS,
      ...(o.lastEventId ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: o.lastEventId + 1 } : { deliver_policy: DeliverPolicy.New }),
    });
    let messages: ConsumerMessages | undefined;
    s.onClose(async () => {
      // Stopped first (its unsubscribe is synchronous), so that no reset re-creates the consumer.
      void messages?.close();
      await consumer.delete().catch(() => undefined);
    });
    if (s.gone()) return;
    messages = await consumer.consume();
    if (s.gone()) return;
    s.start();
    if (!o.lastEventId && !s.write(`event: snapshot\ndata: ${JSON.stringify(await o.snapshot())}\n\n`)) return;
    for await (const m of messages) if (!s.write(`id: ${m.seq}\nevent: fault\ndata: ${o.toEvent(m.data)}\n\n`)) break;
    await s.close();
  });
}
