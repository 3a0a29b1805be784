import Fastify, { LogController } from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { ConfigError } from "../../contracts/index.ts";
import type { Db } from "../db.ts";
import { healthRoutes } from "./ops.ts";
import type { App } from "./server.ts";

export interface OpsServer {
  url: string;
  /** Readiness answers 503 from now on (the process is shutting down), then the server closes. */
  stop(): Promise<void>;
}

/**
 * A process's own `/healthz`, `/readyz` and `/metrics` on a port of its own (METRICS_PORT), so
 * that a process without the control service's HTTP API (a writer, a processor) is watched too.
 */
export async function startOpsServer(o: { port: number; host: string; db: Db; nc: NatsConnection; registry: Registry; log: Logger }): Promise<OpsServer> {
  let draining = false;
  const app = Fastify({ loggerInstance: o.log, logController: new LogController({ disableRequestLogging: true }) }) as unknown as App;
  // The routes' schemas are zod's, as on the control service's port.
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  healthRoutes(app, { db: o.db, nc: o.nc, registry: o.registry, draining: () => draining });
  const address = await app.listen({ port: o.port, host: o.host }).catch((e: unknown) => {
    // Two processes on one host with the same ops port: say which setting to change, in one line.
    if ((e as { code?: string }).code === "EADDRINUSE")
      throw new ConfigError(`METRICS_PORT ${o.port} is in use on ${o.host}: give each process on one host its own METRICS_PORT (0: any free port)`);
    throw e;
  });
  const url = address.replace("0.0.0.0", "127.0.0.1").replace("[::]", "127.0.0.1");
  return {
    url,
    async stop() {
      draining = true;
      await app.close();
    },
  };
}
