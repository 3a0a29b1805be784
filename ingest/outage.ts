import { JetStreamApiError } from "@nats-io/jetstream";
import { jserrors } from "@nats-io/jetstream/internal";
import { errors as natsErrors } from "@nats-io/nats-core";

/** Which dependency could not be reached. */
export type Dependency = "database" | "nats";

/**
 * Socket errors of a connection that could not be made or was lost (Node's `code`). A pg client
 * and a NATS connection both report these.
 */
const SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);

/**
 * SQLSTATEs that mean the server, not the statement, failed: class 08 (connection exception),
 * 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now), 53300 (too many connections),
 * 25006 (read-only transaction: the server is a standby now, a failover demoted it; the pool
 * finds the new primary for the next try, control/primary.ts).
 */
const PG_UNAVAILABLE = (code: string) =>
  code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03" || code === "53300" || code === "25006";

/**
 * What node-postgres says, without a code, when a connection ends or cannot be had: its own
 * errors carry no code or class (pg 8), so these messages are the only handle. Each is a fixed
 * string of pg or pg-pool ("Connection terminated unexpectedly", "Connection terminated due to
 * connection timeout", "timeout exceeded when trying to connect", "Client has encountered a
 * connection error and is not queryable", "Client was closed and is not queryable").
 */
const PG_CONNECTION_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect$/,
  /^Client has encountered a connection error and is not queryable$/,
  /^Client was closed and is not queryable$/,
];

/** JetStream API error codes of a JetStream that is there but cannot serve now. */
const JS_UNAVAILABLE_CODES = new Set([
  10008, // JetStream system temporarily unavailable
  10023, // insufficient resources
]);

/** Errors of a NATS connection that is down, closing, or got no answer in time. */
const NATS_UNAVAILABLE: (new (...a: never[]) => Error)[] = [
  natsErrors.ClosedConnectionError,
  natsErrors.DrainingConnectionError,
  natsErrors.ConnectionError,
  natsErrors.TimeoutError,
  natsErrors.NoRespondersError,
  // nats.js wraps a timeout, no responders and "connection disconnected" in a RequestError.
  natsErrors.RequestError,
  // JetStream answering "no responders": its API is not there (a server starting, a lost leader).
  jserrors.JetStreamNotEnabled,
];

/**
 * The dependency whose outage caused `err` (looking through `cause`), or null for any other
 * error. What this names is retried by background loops and answered 503 `unavailable` at the
 * HTTP edge; everything else is a fault of the request or of the code.
 */
export function unavailableDependency(err: unknown): Dependency | null {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (NATS_UNAVAILABLE.some((k) => e instanceof k)) return "nats";
    if (e instanceof JetStreamApiError) return JS_UNAVAILABLE_CODES.has(e.code) || e.status === 503 ? "nats" : null;
    if (!(e instanceof Error)) return null;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      // nats.js wraps its socket errors in its own classes (above): a bare one is pg's.
      if (SOCKET_CODES.has(code)) return "database";
      if (/^[0-9A-Z]{5}$/.test(code)) return PG_UNAVAILABLE(code) ? "database" : null;
    }
    if (PG_CONNECTION_MESSAGES.some((m) => m.test(e.message))) return "database";
    // Several addresses tried at once (Node's happy eyeballs): each its own socket error.
    if (e instanceof AggregateError) return e.errors.map(unavailableDependency).find((d) => d !== null) ?? null;
  }
  return null;
}

