// The platform's HTTP API as the pages use it: a bearer token held in sessionStorage.
const KEY = "voltvend.token";

/** A token handed over by an identity provider in the URL fragment (#token=…) is kept and removed from the address. */
export function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}
export const token = () => sessionStorage.getItem(KEY);
export const setToken = (v) => sessionStorage.setItem(KEY, v);

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (token()) headers.authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  const data = text ? JSON.parse(text) : undefined;
  if (!r.ok) throw new ApiError(r.status, data?.error?.code ?? "error", data?.error?.message ?? r.statusText);
  return data;
}

/**
 * Server-sent events read with fetch, so the token goes in the Authorization header (EventSource
 * cannot send one, and a token in the URL would land in logs). Calls onEvent(name, data) until the
 * stream ends or the signal aborts.
 */
export async function events(path, onEvent, signal) {
  const r = await fetch(path, { headers: { authorization: `Bearer ${token()}`, accept: "text/event-stream" }, signal });
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
