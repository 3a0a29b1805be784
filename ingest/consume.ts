import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { RetryBackoff } from "./retry.ts";
import { isNotFound } from "./streams.ts";

/** A message that can never be valid: dead-lettered and terminated, not retried. */
export class PoisonMessageError extends Error {
  override name = "PoisonMessageError";
  /** A short code for metrics (`invalid`, `not_json`, `future_ts`, ...). */
  constructor(
    message: string,
    readonly code = "invalid",
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface Reject {
  /** A short code for metrics; the reason says it in words. */
  code: string;
  reason: string;
  /** The rejected part as a string: the whole payload, or one reading of a batch. */
  payload: string;
  /** Distinguishes parts of one message, so a redelivered message dead-letters each part once. */
  part: number;
}

export interface LateReject {
  msg: JsMsg;
  reject: Reject;
}

/**
 * What a handle may answer instead: the batch's work is done in order, but what must be stored
 * before its acknowledgement is still on its way; the next batch is handled meanwhile, and this
 * one is acknowledged once `ackAfter` resolves (negatively acknowledged, for redelivery, if it rejects).
 */
export interface AckLater {
  ackAfter: Promise<void>;
}

export function isAckLater(v: unknown): v is AckLater {
  return typeof v === "object" && v !== null && !Array.isArray(v) && (v as AckLater).ackAfter instanceof Promise;
}

export interface Decoded<T> {
  items: T[];
  rejects: Reject[];
}

export interface ConsumerSpec {
  stream: string;
  durable: string;
  filterSubject?: string;
  /** Unacknowledged messages in flight; bounds memory (back-pressure). @default 2000 */
  maxAckPending?: number;
  /** Seconds before an unacknowledged message is redelivered. @default 30 */
  ackWaitS?: number;
}

export interface ConsumeOptions<T> extends ConsumerSpec {
  nc: NatsConnection;
  log: Logger;
  /**
   * Turns one message into work items and rejected parts (a batch may be partly valid); throws
   * PoisonMessageError for a message that can never be valid as a whole.
   */
  decode(m: JsMsg): Decoded<T>;
  /**
   * Runs the effects of a batch; the batch is acknowledged only after this resolves. It may
   * return items it rejected (validation that needs state), which are dead-lettered before the ack.
   */
  handle(items: T[], msgs: JsMsg[]): Promise<void | LateReject[] | AckLater>;
  /** Publishes a dead letter; awaited before the message is acknowledged or terminated. */
  deadLetter(m: JsMsg, reject: Reject): Promise<void>;
  /** Largest batch handed to handle(). @default 500 */
  maxBatch?: number;
  /**
   * Delay before a failed batch is retried in place or redelivered; it doubles with each failure
   * in a row (up to 5 s or this, whichever is longer: an outage of PostgreSQL or NATS) and with each
   * redelivery of the same message (up to 8 times this). @default 1000
   */
  retryDelayMs?: number;
  /** The longest wait between tries of a failed batch. @default 5000, or retryDelayMs if longer */
  maxRetryDelayMs?: number;
  /**
   * Batches in flight at once (decoded in order, handled overlapping): lets a writer keep the
   * database busy while it decodes the next batch. @default 1
   */
  concurrency?: number;
  /**
   * Retry a failed batch here, in order, keeping its messages in progress, instead of handing it
   * back to the server; for consumers whose effects must happen in stream order. @default false
   */
  retryInPlace?: boolean;
}

export async function ensureConsumer(nc: NatsConnection, spec: ConsumerSpec): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const cfg = {
    durable_name: spec.durable,
    // Explicit, never AckPolicy.All: after a crash, a new subscriber's ack-all would acknowledge
    // the messages the dead one held unstored (measured: readings lost in the crash test).
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: spec.maxAckPending ?? 2000,
    ack_wait: (spec.ackWaitS ?? 30) * 1_000_000_000,
    ...(spec.filterSubject ? { filter_subject: spec.filterSubject } : {}),
  };
  try {
    await jsm.consumers.info(spec.stream, spec.durable);
    await jsm.consumers.update(spec.stream, spec.durable, { max_ack_pending: cfg.max_ack_pending, ack_wait: cfg.ack_wait });
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await jsm.consumers.add(spec.stream, cfg);
  }
}

/**
 * How long each pull request waits at the server, and the idle heartbeat asked for while it waits.
 * nats.js pulls again when three quarters of a pull is delivered, when a pull ends (the server's
 * 408 says how much of it was left), or after two missed heartbeats; nothing else tells it that its
 * pulls are gone. On a cluster they go with the consumer's leader: a nats-server killed while this
 * client stays connected to another (measured: the consume loop silent 30-45 s with nats.js's
 * default 30 s pulls and heartbeats of half that, sessions cut that late). The 1 s heartbeat finds
 * a lost pull in 2-3 s and it is pulled again from the new leader once it is elected
 * (test/integration/consume-leader-loss.test.ts). (Heartbeats every 0.5 s found it sooner, but on
 * a loaded machine an event loop a second late took a live pull for lost every few seconds: a
 * consumer info and a pull each time.)
 *
 * The pulls last 10 s, not 2: with nats-server 2.9.10 the end of a pull now and then did not get
 * nats.js to pull again (measured on a quiet machine, 3,000 terminals in batches, 60 messages a
 * second: a pull ended 2 s after it was sent with 880 of its 1,000 never delivered, no new pull
 * went out, and the processors got nothing until two heartbeats were missed; whether the server's
 * 408 was lost or came without its count was not found out). Every cutoff and fault decision of
 * those 2-3 s came that late: the scale benchmark's p99 at 1,000 and 3,000 terminals. The price:
 * after a server's death, nats.js waits a pull's length between its failed looks for the
 * consumer's new leader, so a consume loop resumes 9.5-17 s after the kill instead of 6-10 s (a
 * rare failure made slower, for a stall every few minutes gone from normal running). A consumer
 * that takes more than a quarter of a pull (250 messages) in 10 s pulls again before its pull ends
 * and never depends on that answer; a quieter one meets it five times less often than with 2 s
 * pulls. An idle consumer sends a pull every 10 s and gets a heartbeat every second.
 */
export const PULL_EXPIRES_MS = 10_000;
const PULL_HEARTBEAT_MS = 1000;
/** Its JetStream requests (the consumer's info before pulling again) are not waited on longer. */
const CONSUME_API_TIMEOUT_MS = 1000;

export interface RunningConsumer {
  /** Stops pulling, finishes the batch in hand, and resolves when nothing is in flight. */
  stop(): Promise<void>;
  readonly done: Promise<void>;
  /**
   * Milliseconds since the server last spoke on this subscription (a message taken, a heartbeat,
   * a pull's end); Infinity before it first did. A message's `pending` is only as fresh as this.
   */
  quietMs(): number;
}

/**
 * The one consume loop of the platform. Messages are pulled continuously and handed over in
 * batches of whatever has arrived, so a quiet stream costs one message of latency and a busy one
 * amortises I/O over many. Batches are decoded in stream order and, unless `concurrency` says
 * otherwise, handled one after another.
 */
export async function runConsumer<T>(o: ConsumeOptions<T>): Promise<RunningConsumer> {
  await ensureConsumer(o.nc, o);
  const js = jetstream(o.nc, { timeout: CONSUME_API_TIMEOUT_MS });
  const maxBatch = o.maxBatch ?? 500;
  const highWater = o.maxAckPending ?? 2000;

  const buf: JsMsg[] = [];
  // Wake-ups between the reader and the worker (an object, so closures see the latest).
  const sig: { wake?: (() => void) | undefined; drained?: (() => void) | undefined } = {};
  let pulling = true;
  let stopping = false;
  let current: ConsumerMessages | null = null;
  let heardAt = Number.NEGATIVE_INFINITY;
  const heard = () => void (heardAt = performance.now());
  const subscribing = new RetryBackoff(o.log.child({ stream: o.stream, durable: o.durable }), "subscribing", { baseMs: 500 });
  const batches = new RetryBackoff(o.log.child({ stream: o.stream, durable: o.durable }), "batch", {
    baseMs: o.retryDelayMs ?? 1000,
    maxMs: o.maxRetryDelayMs ?? Math.max(o.retryDelayMs ?? 1000, 5000),
  });

  // The pull subscription can end under us (a server restart it could not ride out, the consumer
  // recreated); the reader then subscribes again, until stop() is called.
  const reader = (async () => {
    while (!stopping) {
      try {
        const consumer = await js.consumers.get(o.stream, o.durable);
        current = await consumer.consume({ max_messages: Math.min(highWater, 1000), expires: PULL_EXPIRES_MS, idle_heartbeat: PULL_HEARTBEAT_MS });
        subscribing.succeeded();
        followNotifications(o, current, heard);
        for await (const m of current) {
          heard();
          buf.push(m);
          sig.wake?.();
          if (buf.length >= highWater) await new Promise<void>((r) => (sig.drained = r));
        }
        if (!stopping) o.log.warn({ stream: o.stream, durable: o.durable }, "pull subscription ended; subscribing again");
        if (!stopping) await new Promise((r) => setTimeout(r, 500));
      } catch (e) {
        // NATS down: the lookup fails until it is back; each try waits longer, up to 5 s.
        if (!stopping) await new Promise((r) => setTimeout(r, subscribing.failed(e)));
      }
    }
    pulling = false;
    sig.wake?.();
  })();

  const concurrency = o.concurrency ?? 1;
  const inflight = new Set<Promise<void>>();
  /** Acknowledgements waiting for what their batch's handle still stores (AckLater). */
  const acks = new Set<Promise<void>>();
  const later = (p: Promise<void>) => {
    acks.add(p);
    void p.finally(() => acks.delete(p));
  };
  const worker = (async () => {
    for (;;) {
      if (buf.length === 0) {
        if (!pulling) return;
        await new Promise<void>((r) => (sig.wake = r));
        sig.wake = undefined;
        continue;
      }
      const batch = buf.splice(0, maxBatch);
      sig.drained?.();
      sig.drained = undefined;
      const p = processBatch(o, batch, () => stopping, batches, later).finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= concurrency) await Promise.race(inflight);
    }
  })()
    .then(() => Promise.all(inflight))
    .then(() => Promise.all(acks));

  const done = Promise.all([reader, worker]).then(() => undefined);
  return {
    done,
    quietMs: () => performance.now() - heardAt,
    async stop() {
      stopping = true;
      await current?.close();
      pulling = false;
      sig.wake?.();
      sig.drained?.();
      await done;
    },
  };
}

/**
 * What nats.js notices about a pull subscription: the server's heartbeats and pull ends (408) as
 * signs of life, and what an operator may want to see (not the routine pulls and heartbeats).
 */
function followNotifications(o: ConsumerSpec & { log: Logger }, messages: ConsumerMessages, heard: () => void): void {
  void (async () => {
    for await (const n of messages.status()) {
      if (n.type === "heartbeat" || (n.type === "debug" && n.code === 408)) heard();
      // Once per silence: two heartbeats missed, pulling again.
      if (n.type === "heartbeats_missed" && n.count === 2) o.log.info({ stream: o.stream, durable: o.durable }, "pull subscription silent; pulling again");
      else if (n.type === "consumer_not_found" || n.type === "consumer_deleted" || n.type === "stream_not_found") o.log.warn({ stream: o.stream, durable: o.durable, notification: n.type }, "pull subscription: consumer missing");
    }
  })().catch(() => {});
}

async function processBatch<T>(o: ConsumeOptions<T>, batch: JsMsg[], isStopping: () => boolean, backoff: RetryBackoff, later: (ack: Promise<void>) => void): Promise<void> {
  const items: T[] = [];
  const good: JsMsg[] = [];
  const poison = new Set<JsMsg>();
  const letters: Promise<void>[] = [];
  const rejected: [JsMsg, Reject][] = [];
  for (const m of batch) {
    let d: Decoded<T>;
    try {
      d = o.decode(m);
    } catch (e) {
      if (!(e instanceof PoisonMessageError)) throw e;
      d = { items: [], rejects: [{ code: e.code, reason: e.message, payload: new TextDecoder().decode(m.data), part: 0 }] };
      poison.add(m);
    }
    items.push(...d.items);
    for (const r of d.rejects) {
      rejected.push([m, r]);
      letters.push(o.deadLetter(m, r));
    }
    if (!poison.has(m)) good.push(m);
  }
  const inPlace = o.retryInPlace === true;
  for (let attempt = 1; ; attempt++) {
    try {
      await Promise.all(letters);
      break;
    } catch (e) {
      // Nothing is acknowledged before its dead letters are stored.
      if (!inPlace || isStopping()) {
        o.log.error({ err: e }, "dead-lettering failed; redelivering");
        for (const m of batch) m.nak(redeliveryDelay(o.retryDelayMs ?? 1000, m.info.deliveryCount));
        return;
      }
      if (attempt === 1) o.log.error({ err: e }, "dead-lettering failed; retrying");
      for (const m of batch) m.working();
      await new Promise((r) => setTimeout(r, o.retryDelayMs ?? 1000));
      // The failed attempt's promises are settled (awaited above): only the retry's are kept.
      void letters.splice(0, letters.length, ...rejected.map(([m, r]) => o.deadLetter(m, r)));
    }
  }
  // A plain +TERM: nats-server before 2.11 ignores `+TERM <reason>`, leaving the message
  // unacknowledged (redelivered every ack wait, and blocking the consumer at max_ack_pending).
  for (const m of poison) m.term();
  if (good.length === 0) return;
  for (let attempt = 1; ; attempt++) {
    try {
      // A short ack wait brings a crashed instance's messages back soon; a slow handle (a
      // database that is slow for a moment) must not be taken for one, so it says it is working.
      const heartbeat = setInterval(() => good.forEach((m) => m.working()), ((o.ackWaitS ?? 30) * 1000) / 3);
      let late: LateReject[] | AckLater | void;
      try {
        late = await o.handle(items, good);
      } catch (e) {
        clearInterval(heartbeat);
        throw e;
      }
      if (isAckLater(late)) {
        // Still working until what the handle stores is stored; the next batch goes on meanwhile.
        later(
          late.ackAfter.then(
            () => good.forEach((m) => m.ack()),
            (err: unknown) => {
              o.log.warn({ err, n: good.length }, "batch not acknowledged: what it records was not stored; redelivering");
              good.forEach((m) => m.nak(redeliveryDelay(o.retryDelayMs ?? 1000, m.info.deliveryCount)));
            },
          ).finally(() => clearInterval(heartbeat)),
        );
        backoff.succeeded();
        return;
      }
      clearInterval(heartbeat);
      if (late && late.length) await Promise.all(late.map((l) => o.deadLetter(l.msg, l.reject)));
      for (const m of good) m.ack();
      backoff.succeeded();
      return;
    } catch (e) {
      // Logged by the back-off: an outage as a warning now and then, anything else each time.
      const delay = backoff.failed(e, { n: good.length, attempt, redelivered: !inPlace || isStopping() });
      if (!inPlace || isStopping()) {
        for (const m of good) m.nak(Math.max(delay, redeliveryDelay(o.retryDelayMs ?? 1000, m.info.deliveryCount)));
        return;
      }
      for (const m of good) m.working();
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * The delay before the n-th delivery of a message is tried again: doubled per delivery, at most 8
 * times the first, so an outage is not hammered and a recovery is noticed within seconds.
 */
export function redeliveryDelay(firstMs: number, deliveryCount: number): number {
  return firstMs * 2 ** Math.min(Math.max(deliveryCount - 1, 0), 3);
}
