import compress from "@fastify/compress";
import swagger from "@fastify/swagger";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import type { Logger } from "pino";
import type { Principal, Role } from "../auth.ts";
import { unavailableDependency } from "../../ingest/index.ts";
import { ApiError, RETRY_AFTER_S, unavailable } from "../errors.ts";
import { Int8OverflowError } from "../db.ts";
import type { Metrics } from "../metrics.ts";
import { rateLimits, type Limit, type RateLimitOptions } from "./limits.ts";
import { nulPaths } from "./nul.ts";

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
}

export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger, ZodTypeProvider>;

/** A route hook (onRequest): authentication, roles, rate limits. */
export type Hook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** A route as registered: its method, URL and schema (the zod schemas, before the OpenAPI transform). */
export interface RouteEntry {
  method: string;
  url: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Fastify's route schemas are untyped; the OpenAPI test reads them
  schema: Record<string, any> | undefined;
}
const tables = new WeakMap<object, RouteEntry[]>();
/** Every route of an app made by createApp (HEAD routes Fastify adds for GETs left out): for the route test. */
export const routeTable = (app: App): RouteEntry[] => tables.get(app) ?? [];

/** A Fastify instance with zod validation, the protocol's error shape, metrics and OpenAPI. */
export async function createApp(o: {
  log: Logger;
  metrics: Metrics;
  authenticate: (h: string | undefined) => Promise<Principal>;
  limits: RateLimitOptions;
  /** Fastify's trustProxy: which proxies' X-Forwarded-For gives the client address. */
  trustProxy?: boolean | number | string;
}): Promise<{
  app: App;
  /** Authenticates, checks the role, then counts the request against the principal's rate limit. */
  auth: (...roles: Role[]) => (req: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** The rate limit of a public call, per client address (an onRequest hook). */
  publicLimit: (name: string) => Limit;
}> {
  // Fastify's own request lines are at info; one line per request at debug instead (below), so
  // that info carries what an operator follows: state and fault changes, outages, starts and stops.
  const app = Fastify({
    loggerInstance: o.log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1 << 20,
    forceCloseConnections: false,
    trustProxy: (o.trustProxy ?? false) as boolean,
    // Errors found before a route runs (a malformed percent-encoding in the URL, headers past
    // Node's 16 KB limit) answer in the protocol's shape too, not in Fastify's own.
    frameworkErrors: (err, req, reply) => sendError(err, req, reply),
    clientErrorHandler: clientError,
  }).withTypeProvider<ZodTypeProvider>() as unknown as App;
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const table: RouteEntry[] = [];
  tables.set(app, table);
  app.addHook("onRoute", (r) => {
    for (const method of [r.method].flat()) if (method !== "HEAD") table.push({ method, url: r.url, schema: r.schema as RouteEntry["schema"] });
  });
  await app.register(swagger, {
    openapi: {
      info: { title: "Voltvend", version: "1", description: "Voltvend protocol v1.1 HTTP API (see docs/protocol.md)" },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  // Answers of 1 KB and more in br or gzip when the client accepts it (a month's report by user is
  // 1.3 MB of JSON); server-sent events write to the socket themselves and stay as they are.
  // Request bodies sent with a content-encoding are inflated (bodyLimit counts the inflated bytes).
  await app.register(compress, { threshold: 1024, encodings: ["br", "gzip"] });

  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    o.metrics.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    o.metrics.httpSeconds.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    req.log.debug({ method: req.method, url: req.url, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, "request");
    // 503 is an outage, logged once where it is classified (sendError), not a failed request.
    if (reply.statusCode >= 500 && reply.statusCode !== 503) req.log.error({ route, status: reply.statusCode }, "request failed");
  });

  // No string from outside may carry U+0000 (PostgreSQL's text cannot hold it): refused here for
  // every body, query and path parameter, whatever its route's schema says.
  app.addHook("preValidation", async (req) => {
    const details = [...nulPaths(req.params, "params"), ...nulPaths(req.query, "querystring"), ...nulPaths(req.body, "body")];
    if (details.length) throw new ApiError(400, "invalid_request", "strings must not contain the NUL character (U+0000)", details);
  });

  const limits = await rateLimits(app, o.limits);

  app.setErrorHandler((err, req, reply) => sendError(err, req, reply));
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: "not_found", message: `no route ${req.method} ${req.url}` } }),
  );

  const auth =
    (...roles: Role[]) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      const p = await o.authenticate(req.headers.authorization);
      if (!roles.includes(p.role)) throw new ApiError(403, "forbidden", `this call needs the role ${roles.join(" or ")}`);
      req.principal = p;
      await limits.principal(req, reply);
    };
  return { app, auth, publicLimit: limits.publicCall };
}

/**
 * A request Node's parser refused before Fastify saw it: answered on the socket, in the
 * protocol's error shape, and the connection closed (what follows on it cannot be trusted).
 */
function clientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, code, message] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "headers_too_large", "the request's headers exceed 16 KB"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "request_timeout", "the request took too long to arrive"]
        : [400, "bad_request", "malformed HTTP request"];
  const body = JSON.stringify({ error: { code, message } });
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  socket.destroy(err);
}

function sendError(err: unknown, req: FastifyRequest, reply: FastifyReply) {
  // A call that could not be served because PostgreSQL or NATS is down: retry later, not a 500.
  const down = unavailableDependency(err);
  if (down) {
    // Info, not warn: an outage answers every call so, and the loops' back-off logs it as a warning.
    req.log.info({ dependency: down, error: (err as Error).message }, "dependency unavailable");
    err = unavailable(down);
  }
  if (err instanceof ApiError) {
    if (err.status === 503) reply.header("retry-after", String(RETRY_AFTER_S));
    return reply.status(err.status).send({ error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } });
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as { validationContext?: string }).validationContext ?? "body";
    const details = err.validation.map((v) => ({
      path: [where, ...v.instancePath.split("/").filter(Boolean)].join("."),
      message: v.message ?? "invalid",
    }));
    return reply.status(400).send({ error: { code: "invalid_request", message: `invalid ${where}`, details } });
  }
  const e = err as { statusCode?: number; code?: string; message?: string };
  // A total past 2^53 (a report over a huge range of maximal sessions; numeric_value_out_of_range
  // from the database's own overflow-checked sums): the question is too big to answer exactly.
  if (err instanceof Int8OverflowError || e.code === "22003") {
    req.log.warn({ err }, "answer too large to be exact");
    return reply.status(422).send({ error: { code: "too_large", message: "a total in this answer exceeds what JSON numbers carry exactly (2^53): ask for a shorter range or finer groups" } });
  }
  // PostgreSQL refused a character of the input (U+0000, or an escape jsonb cannot store): the
  // input is bad, whatever slipped past the edge's checks.
  // A CHECK constraint of the schema refused a value the edge let through (check_violation): the
  // input is out of what can be stored.
  if (e.code === "23514") {
    req.log.warn({ err }, "input refused by a check constraint");
    return reply.status(400).send({ error: { code: "invalid_request", message: "a value in the request is outside what can be stored" } });
  }
  if (e.code === "22021" || e.code === "22P05") {
    req.log.warn({ err }, "input refused by PostgreSQL");
    return reply.status(400).send({ error: { code: "invalid_request", message: "the request contains a character that cannot be stored" } });
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
    const code = e.code === "FST_ERR_CTP_INVALID_JSON_BODY" || /JSON/.test(e.message ?? "") ? "invalid_json" : "bad_request";
    return reply.status(e.statusCode).send({ error: { code, message: e.message ?? "bad request" } });
  }
  req.log.error({ err }, "unhandled error");
  return reply.status(500).send({ error: { code: "internal", message: "internal error" } });
}
