import type { NatsConnection } from "@nats-io/nats-core";
import type { Db } from "../db.ts";
import type { Metrics } from "../metrics.ts";
import type { App } from "./server.ts";

/** Liveness, readiness (database and NATS reachable), Prometheus metrics, and the OpenAPI document. */
export function opsRoutes(app: App, o: { db: Db; nc: NatsConnection; metrics: Metrics; draining: () => boolean }) {
  const hide = { schema: { hide: true } };
  app.get("/healthz", hide, async () => ({ ok: true }));
  app.get("/readyz", hide, async (_req, reply) => {
    const checks: Record<string, string> = {};
    try {
      await o.db.query("SELECT 1");
      checks.database = "ok";
    } catch (e) {
      checks.database = (e as Error).message;
    }
    checks.nats = o.nc.isClosed() ? "closed" : "ok";
    if (o.draining()) checks.draining = "shutting down";
    const ok = checks.database === "ok" && checks.nats === "ok" && !o.draining();
    return reply.status(ok ? 200 : 503).send({ ok, checks });
  });
  app.get("/metrics", hide, async (_req, reply) =>
    reply.header("content-type", o.metrics.registry.contentType).send(await o.metrics.registry.metrics()),
  );
  app.get("/openapi.json", hide, async () => app.swagger());
}
