// @ts-check
// The platform's HTTP API as the pages use it: a bearer token held in sessionStorage.
const KEY = "voltvend.token";

/** A token handed over by an identity provider in the URL fragment (#token=…) is kept and removed from the address. */
export function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m?.[1]) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}
export const token = () => sessionStorage.getItem(KEY);
export const setToken = (/** @type {string} */ v) => sessionStorage.setItem(KEY, v);
export const signOut = () => sessionStorage.removeItem(KEY);

/** An answer that is not 2xx: its status and the API's error code (the message is for logs, not people). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * One call. A body that is not JSON (a proxy's error page) still becomes an ApiError with the status.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" };
  const tok = token();
  if (tok) headers.authorization = `Bearer ${tok}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body) });
  const text = await r.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!r.ok) throw new ApiError(r.status, data?.error?.code ?? "error", data?.error?.message ?? r.statusText);
  return data;
}

/**
 * Server-sent events read with fetch, so the token goes in the Authorization header (EventSource
 * cannot send one, and a token in the URL would land in logs). Calls onEvent(name, data) until the
 * stream ends or the signal aborts.
 * @param {string} path
 * @param {(name: string, data: any) => void} onEvent
 * @param {AbortSignal} [signal]
 */
export async function events(path, onEvent, signal) {
  const r = await fetch(path, { headers: { authorization: `Bearer ${token()}`, accept: "text/event-stream" }, signal: signal ?? null });
  if (!r.ok || !r.body) throw new ApiError(r.status, "stream_failed", "the live stream could not be opened");
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let name = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}
