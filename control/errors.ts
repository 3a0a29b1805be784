/** An error that becomes `{"error": {code, message, details}}` with its status at the HTTP edge. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: 400 | 401 | 402 | 403 | 404 | 409 | 429 | 503,
    readonly code: string,
    message: string,
    readonly details?: { path: string; message: string }[],
  ) {
    super(message);
  }
}

export const notFound = (what: string, id: string) => new ApiError(404, `${what}_not_found`, `${what.replace(/_/g, " ")} ${id} not found`);
export const conflict = (code: string, message: string) => new ApiError(409, code, message);
export const paymentRequired = (code: string, message: string) => new ApiError(402, code, message);
export const forbidden = (message = "not allowed for this role") => new ApiError(403, "forbidden", message);
export const rateLimited = (message: string) => new ApiError(429, "rate_limited", message);
