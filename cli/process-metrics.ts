import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type pg from "pg";
import { Gauge, type Registry } from "prom-client";
import type { Subjects } from "../contracts/index.ts";

/** How long a scrape waits for JetStream's answers before it keeps the last values. */
const JS_TIMEOUT_MS = 1000;

/**
 * What every process reports besides its parts' own metrics: its database pool (callers waiting
 * for a connection is the first sign of a pool too small or a database too slow), and the
 * platform's streams and consumers as JetStream sees them, read at each scrape (a consumer's
 * `num_pending` is its lag: messages stored and not yet delivered to it). Every process reports
 * the same streams and consumers: take `max by (stream, consumer)` across processes.
 */
export function processMetrics(registry: Registry, o: { pool: pg.Pool; nc: NatsConnection; subjects: Subjects }): void {
  const r = [registry];
  new Gauge({ name: "vend_db_pool_waiting", help: "Callers waiting for a database connection of this process's pool", registers: r, collect() { this.set(o.pool.waitingCount); } });
  new Gauge({ name: "vend_db_pool_connections", help: "Open database connections of this process's pool", registers: r, collect() { this.set(o.pool.totalCount); } });
  new Gauge({ name: "vend_db_pool_idle", help: "Idle database connections of this process's pool", registers: r, collect() { this.set(o.pool.idleCount); } });

  const messages = new Gauge({ name: "vend_stream_messages", help: "Messages a stream holds", labelNames: ["stream"], registers: r, collect: () => refresh() });
  const bytes = new Gauge({ name: "vend_stream_bytes", help: "Bytes a stream holds", labelNames: ["stream"], registers: r, collect: () => refresh() });
  const maxBytes = new Gauge({ name: "vend_stream_max_bytes", help: "Bytes a stream may hold before its oldest messages go", labelNames: ["stream"], registers: r, collect: () => refresh() });
  const pending = new Gauge({
    name: "vend_consumer_pending",
    help: "A consumer's lag: messages of its stream (within its filter) not yet delivered to it",
    labelNames: ["stream", "consumer"],
    registers: r,
    // One JetStream round of reads per scrape fills every family here; each waits for it.
    collect: () => refresh(),
  });
  const ackPending = new Gauge({
    name: "vend_consumer_ack_pending",
    help: "Messages delivered to a consumer and not yet acknowledged",
    labelNames: ["stream", "consumer"],
    registers: r,
    collect: () => refresh(),
  });

  let jsm: JetStreamManager | null = null;
  let inFlight: Promise<void> | null = null;
  const refresh = () =>
    (inFlight ??= (async () => {
      try {
        jsm ??= await jetstreamManager(o.nc, { checkAPI: false, timeout: JS_TIMEOUT_MS });
        const m = jsm;
        const rows = await Promise.all(
          Object.values(o.subjects.streams).map(async (name) => {
            const si = await m.streams.info(name).catch(() => null);
            if (!si) return null;
            const consumers = [];
            for await (const ci of m.consumers.list(name)) consumers.push(ci);
            return { si, consumers };
          }),
        );
        for (const g of [pending, ackPending]) g.reset();
        for (const x of rows) {
          if (!x) continue;
          const stream = x.si.config.name;
          messages.set({ stream }, x.si.state.messages);
          bytes.set({ stream }, x.si.state.bytes);
          maxBytes.set({ stream }, x.si.config.max_bytes);
          for (const ci of x.consumers) {
            pending.set({ stream, consumer: ci.name }, ci.num_pending);
            ackPending.set({ stream, consumer: ci.name }, ci.num_ack_pending);
          }
        }
      } catch {
        // NATS away: the scrape keeps the last values (readiness says why).
      } finally {
        inFlight = null;
      }
    })());
}
