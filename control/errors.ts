import type { Dependency } from "../ingest/index.ts";

/** An error that becomes `{"error": {code, message, details}}` with its status at the HTTP edge. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: 400 | 401 | 402 | 403 | 404 | 409 | 429 | 503,
    readonly code: string,
    message: string,
    readonly details?: { path: string; message: string }[],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export const notFound = (what: string, id: string) => new ApiError(404, `${what}_not_found`, `${what.replace(/_/g, " ")} ${id} not found`);
export const conflict = (code: string, message: string) => new ApiError(409, code, message);
export const paymentRequired = (code: string, message: string) => new ApiError(402, code, message);
export const forbidden = (message = "not allowed for this role") => new ApiError(403, "forbidden", message);

/** Seconds a client is told to wait before it retries a call that met an outage (`Retry-After`). */
export const RETRY_AFTER_S = 2;

const DEPENDENCY_NAMES: Record<Dependency, string> = { database: "the database", nats: "the message broker" };

/** 503 `unavailable`: a dependency the call needs is down (protocol 1.1); the client retries later. */
export const unavailable = (dependency: Dependency) =>
  new ApiError(503, "unavailable", `${DEPENDENCY_NAMES[dependency]} cannot be reached; retry later`);
export const rateLimited = (message: string) => new ApiError(429, "rate_limited", message);
