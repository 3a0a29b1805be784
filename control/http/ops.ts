import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { QueryConfig } from "pg";
import type { Registry } from "prom-client";
import type { Db } from "../db.ts";
import type { Metrics } from "../metrics.ts";
import type { App } from "./server.ts";
import { z } from "zod";
import { content, publicResponses } from "./schemas.ts";

const ops = (operationId: string, summary: string, response: Record<number, unknown>) => ({ schema: { tags: ["operations"], security: [], operationId, summary, response } });

/** How long readiness waits for each dependency's answer: a load balancer polls often and wants a quick no. */
export const READY_TIMEOUT_MS = 2000;

/** Resolves "ok" when `probe` answers in time, else the reason (its error, or the timeout). */
async function check(probe: () => Promise<unknown>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((r) => (timer = setTimeout(() => r(`no answer in ${ms} ms`), ms)));
  try {
    return await Promise.race([
      probe().then(
        () => "ok",
        (e: unknown) => (e as Error).message || String(e),
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Liveness, readiness, Prometheus metrics, and the OpenAPI document. Readiness is a round trip to
 * each dependency: `SELECT 1` through the pool (as a request gets its connection) and a JetStream
 * API call (account info), which needs the server connected and JetStream answering; a
 * connection's own state (`isClosed()`) stays "open" through a whole outage while it reconnects.
 */
export function opsRoutes(app: App, o: { db: Db; nc: NatsConnection; metrics: Metrics; draining: () => boolean }) {
  healthRoutes(app, { ...o, registry: o.metrics.registry });
  app.get("/openapi.json", { schema: { ...ops("openApi", "This OpenAPI document", publicResponses({ 200: z.record(z.string(), z.unknown()) })).schema, hide: true } }, async () => app.swagger());
}

/** `/healthz`, `/readyz` and `/metrics`: on the control service's port, and on every process's ops port (ops-server.ts). */
export function healthRoutes(app: App, o: { db: Db; nc: NatsConnection; registry: Registry; draining: () => boolean }) {
  const readiness = z.object({ ok: z.boolean(), checks: z.record(z.string(), z.string()) });
  // No API check at creation (that is a request itself); each call times out on its own.
  let jsm: JetStreamManager | null = null;
  const natsRoundTrip = async () => {
    jsm ??= await jetstreamManager(o.nc, { checkAPI: false, timeout: READY_TIMEOUT_MS });
    await jsm.getAccountInfo();
  };
  app.get("/healthz", ops("healthz", "Liveness: the process answers", publicResponses({ 200: z.object({ ok: z.literal(true) }) })), async () => ({ ok: true as const }));
  app.get("/readyz", ops("readyz", "Readiness: the database and NATS answer, and the process is not shutting down", publicResponses({ 200: readiness, 503: readiness })), async (_req, reply) => {
    const [database, nats] = await Promise.all([
      // query_timeout (read by pg per query, absent from its types): a stalled probe fails and its
      // connection leaves the pool, rather than each poll holding one more.
      check(() => o.db.query({ text: "SELECT 1", query_timeout: READY_TIMEOUT_MS } as QueryConfig), READY_TIMEOUT_MS),
      check(natsRoundTrip, READY_TIMEOUT_MS),
    ]);
    const checks: Record<string, string> = { database, nats };
    if (o.draining()) checks.draining = "shutting down";
    const ok = database === "ok" && nats === "ok" && !o.draining();
    return reply.status(ok ? 200 : 503).send({ ok, checks });
  });
  app.get("/metrics", ops("metrics", "Prometheus metrics", publicResponses({ 200: content("text/plain", "Prometheus text format") })), async (_req, reply) => reply.header("content-type", o.registry.contentType).send(await o.registry.metrics()));
}
