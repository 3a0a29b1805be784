import type { QueryConfig } from "pg";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Db } from "./db.ts";

/** The control service's Prometheus metrics, on a registry of its own (one per platform instance). */
export function createMetrics(registry: Registry) {
  const r = [registry];
  return {
    registry,
    httpRequests: new Counter({ name: "vend_http_requests_total", help: "HTTP requests", labelNames: ["method", "route", "status"], registers: r }),
    httpSeconds: new Histogram({
      name: "vend_http_request_seconds",
      help: "HTTP request latency",
      labelNames: ["method", "route"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: r,
    }),
    sessionsStarted: new Counter({ name: "vend_sessions_started_total", help: "Charge requests accepted", labelNames: ["payment"], registers: r }),
    sessionsEnded: new Counter({ name: "vend_sessions_ended_total", help: "Sessions ended", labelNames: ["state", "reason"], registers: r }),
    commandsSent: new Counter({ name: "vend_commands_sent_total", help: "Commands published", labelNames: ["type", "repeat"], registers: r }),
    repeatsHandled: new Counter({
      name: "vend_event_repeats_total",
      help: "Terminal events found already handled (answers to repeated commands), done without a transaction",
      labelNames: ["event"],
      registers: r,
    }),
    commandsExpired: new Counter({ name: "vend_commands_expired_total", help: "Commands unanswered by their deadline", labelNames: ["type"], registers: r }),
    armsRepaired: new Counter({
      name: "vend_arms_repaired_total",
      help: "Arms the arms check had to write (a powered session unarmed) or remove (an arm of a session not powered)",
      labelNames: ["change"],
      registers: r,
    }),
    cutoffLatency: new Histogram({
      name: "vend_cutoff_to_power_off_seconds",
      help: "From the processor deciding a cutoff to power_off published",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers: r,
    }),
    deadLetters: new Counter({ name: "vend_dead_letters_total", help: "Messages dead-lettered", labelNames: ["source", "code"], registers: r }),
    sseClients: new Gauge({ name: "vend_sse_clients", help: "Open server-sent event streams", registers: r }),
    webhookFailures: new Counter({
      name: "vend_webhook_failures_total",
      help: "Webhook deliveries that failed (outcome retry: tried again later; given_up: past the give-up age)",
      labelNames: ["outcome"],
      registers: r,
    }),
  };
}

/**
 * Backlogs read from the database at each scrape: what the outbox relay and the webhook sender
 * have still to send. A scrape during an outage keeps the last values (the query gives up after 1 s).
 */
export function backlogMetrics(registry: Registry, db: Db): void {
  const read = async (sql: string): Promise<number | null> => {
    try {
      const r = await db.query<{ n: number }>({ text: sql, query_timeout: 1000 } as QueryConfig);
      return Number(r.rows[0]?.n ?? 0);
    } catch {
      return null;
    }
  };
  new Gauge({
    name: "vend_outbox_backlog",
    help: "Messages committed to the outbox and not yet acknowledged by JetStream",
    registers: [registry],
    async collect() {
      const n = await read("SELECT count(*)::int AS n FROM outbox");
      if (n !== null) this.set(n);
    },
  });
  new Gauge({
    name: "vend_outbox_oldest_seconds",
    help: "Age of the oldest message waiting in the outbox (0 when empty)",
    registers: [registry],
    async collect() {
      const n = await read("SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS n FROM outbox");
      if (n !== null) this.set(n);
    },
  });
  new Gauge({
    name: "vend_webhook_backlog",
    help: "Webhook deliveries neither delivered nor given up",
    registers: [registry],
    async collect() {
      const n = await read("SELECT count(*)::int AS n FROM webhook_deliveries WHERE delivered_at IS NULL AND failed_at IS NULL");
      if (n !== null) this.set(n);
    },
  });
}
export type Metrics = ReturnType<typeof createMetrics>;

export function newRegistry(withDefaults: boolean): Registry {
  const registry = new Registry();
  if (withDefaults) collectDefaultMetrics({ register: registry });
  return registry;
}
