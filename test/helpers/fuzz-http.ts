import http from "node:http";
import { gzipSync } from "node:zlib";
import fc from "fast-check";

/**
 * Request generators and a raw HTTP client for the HTTP fuzz run (test/integration/fuzz-http.test.ts).
 * Requests are built from the app's own route table and OpenAPI document, so a route added later is
 * fuzzed without touching this file.
 */

/** One route of the app: its method, its path with `:param`s, and what the OpenAPI document says of it. */
export interface Route {
  method: string;
  path: string;
  params: string[];
  query: { name: string; schema: JsonSchema }[];
  body: JsonSchema | null;
}

export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
};

/**
 * The routes of Fastify's `printRoutes({ commonPrefix: false })` tree (every route, the hidden ones
 * too), HEAD left out, each joined with its OpenAPI operation when it has one.
 */
export function routesOf(tree: string, openapi: { paths: Record<string, Record<string, any>> }): Route[] {
  const routes: Route[] = [];
  const stack: string[] = [];
  for (const line of tree.split("\n")) {
    const m = /^((?:│ {3}| {4})*)[├└]── (\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    const path = (stack[depth - 1] ?? "") + m[2]!;
    stack[depth] = path;
    for (const method of (m[3] ?? "").split(",").map((x) => x.trim())) {
      if (!method || method === "-" || method === "HEAD") continue;
      const op = openapi.paths[path.replace(/:(\w+)/g, "{$1}")]?.[method.toLowerCase()];
      const parameters: { in: string; name: string; schema: JsonSchema }[] = op?.parameters ?? [];
      routes.push({
        method,
        path,
        params: [...path.matchAll(/:(\w+)/g)].map((x) => x[1]!),
        query: parameters.filter((p) => p.in === "query").map((p) => ({ name: p.name, schema: p.schema })),
        body: op?.requestBody?.content?.["application/json"]?.schema ?? (method === "GET" ? null : {}),
      });
    }
  }
  return routes;
}

/** Who may get a 2xx from a path: the protocol's roles by path, public otherwise. */
export function rolesFor(pathname: string): string[] | "public" {
  if (pathname.startsWith("/v1/admin")) return ["admin"];
  if (pathname.startsWith("/v1/franchisee")) return ["franchisee"];
  if (pathname.startsWith("/v1/sessions")) return ["user", "admin"];
  if (/^\/v1\/(charge-requests|scan-failures|me)(\/|$|\?)/.test(pathname)) return ["user"];
  if (/^\/v1\/(terminals|demo)\//.test(pathname) || !pathname.startsWith("/v1/")) return "public";
  return ["admin", "franchisee", "user"];
}

/** Who a request claims to be: a real principal of the seeded platform, or a token that must be refused. */
export type Caller =
  | { kind: "none" }
  | { kind: "valid"; role: "admin" | "franchisee" | "user"; sub: string; token: string }
  | { kind: "invalid"; why: string; header: string };

/** Values the seeded platform knows, so that generated requests reach past the validation. */
export interface Known {
  callers: Extract<Caller, { kind: "valid" }>[];
  /** Tokens that must be refused (401): expired, forged, unsigned, over-long, ... */
  badTokens: { why: string; header: string }[];
  /** Real ids by the name of a path parameter or body field (terminalId, sessionId, faultId, ...). */
  ids: Record<string, string[]>;
}

const hostileStrings = [
  "",
  " ",
  "\u0000",
  "T1\u0000",
  "a\u0000b",
  "../../etc/passwd",
  "..\\..\\windows\\win.ini",
  "T1.x",
  "T1.*",
  "*",
  ">",
  "T1 ",
  "\t\n\r",
  "😀🔌⚡",
  "\ud800",
  "\u202etxt.exe",
  "Ω≈ç√∫",
  "%00",
  "%2e%2e%2f",
  "<script>alert(1)</script>",
  "' OR 1=1 --",
  "'; DROP TABLE sessions; --",
  "$(reboot)",
  "{{7*7}}",
  "__proto__",
  "constructor",
  "NaN",
  "Infinity",
  "-1",
  "1e309",
  "null",
  "true",
  "x".repeat(65),
  "x".repeat(513),
  "é".repeat(5000),
  "A".repeat(100_000),
];

const hostileNumbers = [
  0, -0, -1, 1, 0.5, 1.5, 1e-7, 5e-324, 0.1 + 0.2, 59.999, 2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 2 ** 63, 1e16, 1e21, 1e306,
  Number.MAX_VALUE, -Number.MAX_VALUE, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 100_000_000, 100_000_001, 604_801, 1_000_001, 8_640_000_000_000_001,
];

/** Any JSON value at all, shallow: the wrong type where a schema wants another. */
const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.constantFrom(...hostileNumbers),
  fc.constantFrom(...hostileStrings),
  fc.constant([]),
  fc.constant({}),
  fc.constant([[[[[[[[[[1]]]]]]]]]]),
  fc.constant({ __proto__: { admin: true }, constructor: { prototype: { x: 1 } } }),
  fc.jsonValue({ maxDepth: 3 }),
);

const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...hostileStrings) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 60, maxLength: 600 }) },
);

/** `arb` one time in `n`, null otherwise. */
const rarely = <T>(arb: fc.Arbitrary<T>, n: number): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: n - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb });

/** A value for a schema: mostly of the right shape with hostile contents, sometimes of the wrong type. */
export function valueFor(schema: JsonSchema, known: Known, field = "", depth = 0): fc.Arbitrary<unknown> {
  const right = rightShape(schema, known, field, depth);
  return fc.oneof({ weight: 8, arbitrary: right }, { weight: 1, arbitrary: wrongType });
}

function rightShape(schema: JsonSchema, known: Known, field: string, depth: number): fc.Arbitrary<unknown> {
  const alts = schema.anyOf ?? schema.oneOf;
  if (alts?.length) return fc.oneof(...alts.map((s) => valueFor(s, known, field, depth + 1)));
  if (schema.enum?.length) return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...schema.enum) }, { weight: 1, arbitrary: hostileString });
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case "object": {
      const props = Object.entries(schema.properties ?? {});
      if (props.length === 0 || depth > 4) return fc.dictionary(hostileString, wrongType, { maxKeys: 3 });
      const required = new Set(schema.required ?? []);
      const record = fc.record(
        Object.fromEntries(props.map(([k, s]) => [k, valueFor(s, known, k, depth + 1)])),
        { requiredKeys: props.map(([k]) => k).filter((k) => required.has(k)) },
      );
      // Now and then a required key is missing, or keys nobody asked for come along.
      return fc.tuple(record, rarely(fc.dictionary(hostileString, wrongType, { maxKeys: 2 }), 6), fc.nat(20)).map(([r, extra, drop]) => {
        const out: Record<string, unknown> = { ...(extra ?? {}), ...(r as object) };
        if (drop === 0 && props.length) delete out[props[0]![0]];
        return out;
      });
    }
    case "array": {
      const item = schema.items ? valueFor(schema.items, known, field, depth + 1) : wrongType;
      const lo = schema.minItems ?? 0;
      const hi = schema.maxItems ?? 6;
      return fc.oneof(
        { weight: 6, arbitrary: fc.array(item, { minLength: lo, maxLength: Math.min(hi, lo + 4) }) },
        { weight: 1, arbitrary: fc.array(item, { minLength: hi + 1, maxLength: hi + 3 }) },
        { weight: 1, arbitrary: fc.constant([]) },
      );
    }
    case "integer":
    case "number": {
      const lo = schema.minimum ?? 0;
      const hi = Math.min(schema.maximum ?? 1_000_000, Number.MAX_SAFE_INTEGER);
      const near = [lo, lo + 1, hi, hi - 1, Math.floor((lo + hi) / 2)].filter((x) => Number.isFinite(x));
      return fc.oneof(
        { weight: 3, arbitrary: fc.integer({ min: Math.max(Math.ceil(lo), -(2 ** 31)), max: Math.min(Math.floor(hi), 2 ** 31 - 1) }) },
        { weight: 2, arbitrary: fc.constantFrom(...near) },
        { weight: 1, arbitrary: fc.double({ min: lo, max: hi, noNaN: true }) },
        { weight: 3, arbitrary: fc.constantFrom(...hostileNumbers) },
      );
    }
    case "boolean":
      return fc.boolean();
    case "string": {
      const good = known.ids[field];
      const choices: fc.WeightedArbitrary<unknown>[] = [{ weight: 3, arbitrary: hostileString }];
      if (good?.length) choices.push({ weight: 6, arbitrary: fc.constantFrom(...good) });
      if (schema.pattern) choices.push({ weight: 3, arbitrary: fc.stringMatching(new RegExp(schema.pattern)).map((s) => s.slice(0, 200)) });
      else choices.push({ weight: 2, arbitrary: fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 30, 30) }) });
      return fc.oneof(...choices);
    }
    default:
      return wrongType;
  }
}

/** Percent-encodes every byte but the unreserved ones (lone surrogates too, which encodeURIComponent refuses). */
export function pct(s: string): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) out += /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  return out;
}

/** A path parameter: a real id (one's own or another tenant's) or a hostile one, sometimes left raw. */
function paramFor(name: string, known: Known): fc.Arbitrary<string> {
  const good = known.ids[name] ?? [];
  const encoded = hostileString.map(pct);
  const raw = fc.constantFrom("..", ".", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%00", "%zz", "%", "%c0%ae%c0%ae", "T1%00", "%F0%9F%98%80", "a%2Fb", "*", ">", "~", "T1;x", "T1,T2");
  return fc.oneof(
    ...(good.length ? [{ weight: 6, arbitrary: fc.constantFrom(...good) }] : []),
    { weight: 4, arbitrary: encoded },
    { weight: 2, arbitrary: raw },
  );
}

const contentTypes = [
  "application/json",
  "application/json; charset=utf-8",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/json; charset=utf-16",
  "application/xml",
  "application/json, text/plain",
  ";;;",
  "application/\u00e9",
];

export interface FuzzRequest {
  route: Route;
  caller: Caller;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** What was done to the request, for the report of a failure. */
  notes: string[];
}

/** Every kind of request the fuzz run sends, for the route it was drawn for. */
export function requestFor(route: Route, known: Known): fc.Arbitrary<FuzzRequest> {
  // Mostly a caller the route is for, so that requests get past the role check to the handler.
  const roles = rolesFor(route.path);
  const fitting = known.callers.filter((c) => roles === "public" || roles.includes(c.role));
  const callers: fc.Arbitrary<Caller> = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...fitting) },
    { weight: 2, arbitrary: fc.constantFrom(...known.callers) },
    { weight: 2, arbitrary: fc.constantFrom(...known.badTokens).map((b): Caller => ({ kind: "invalid", ...b })) },
    { weight: 1, arbitrary: fc.constant<Caller>({ kind: "none" }) },
  );
  const params = fc.record(Object.fromEntries(route.params.map((p) => [p, paramFor(p, known)])));
  const query = fc.array(
    fc.oneof(
      ...route.query.map((q) =>
        valueFor(q.schema, known, q.name).map((v) => [q.name, typeof v === "string" ? v : JSON.stringify(v) ?? ""] as [string, string]),
      ),
      fc.tuple(hostileString, hostileString),
    ),
    { maxLength: route.query.length + 1 },
  );
  const body: fc.Arbitrary<{ text: string | Buffer | undefined; notes: string[] }> = fc.oneof(
    { weight: 8, arbitrary: (route.body ? valueFor(route.body, known) : fc.constant(undefined)).map((v) => ({ text: v === undefined ? undefined : JSON.stringify(v), notes: [] })) },
    { weight: 2, arbitrary: brokenBody },
  );
  const extra = fc.record({
    contentType: rarely(fc.constantFrom(...contentTypes), 4),
    encoding: rarely(fc.constantFrom("gzip", "br", "deflate", "gzip-real", "identity", "x-unknown"), 10),
    lastEventId: rarely(fc.constantFrom("-1", "0", "1", "1e308", "99999999999999999999", "abc", "9007199254740993"), 5),
    methodOverride: rarely(fc.constantFrom("PATCH", "DELETE", "OPTIONS", "TRACE", "PUT", "POST", "GET"), 15),
    trailingSlash: rarely(fc.constantFrom("/", "//", "?", "#x", "/."), 15),
  });
  return fc.tuple(callers, params, query, body, extra).map(([caller, ps, q, b, x]) => {
    const notes = [...b.notes];
    let path = route.path.replace(/:(\w+)/g, (_m, name: string) => ps[name] ?? "x");
    if (x.trailingSlash) {
      path += x.trailingSlash;
      notes.push(`suffix ${x.trailingSlash}`);
    }
    if (q.length) path += (path.includes("?") ? "&" : "?") + q.map(([k, v]) => `${pct(k)}=${pct(v)}`).join("&");
    const headers: Record<string, string> = {};
    if (caller.kind === "valid") headers.authorization = `Bearer ${caller.token}`;
    if (caller.kind === "invalid") headers.authorization = caller.header;
    let payload = b.text === undefined ? undefined : Buffer.from(b.text);
    if (payload !== undefined || x.contentType) headers["content-type"] = x.contentType ?? "application/json";
    if (x.encoding && payload !== undefined) {
      if (x.encoding === "gzip-real") {
        payload = gzipSync(payload);
        headers["content-encoding"] = "gzip";
      } else headers["content-encoding"] = x.encoding;
      notes.push(`content-encoding ${x.encoding}`);
    }
    if (x.lastEventId) headers["last-event-id"] = x.lastEventId;
    const method = x.methodOverride ?? route.method;
    if (method !== route.method) notes.push(`method ${method}`);
    return { route, caller, method, path, headers, ...(payload !== undefined ? { body: payload } : {}), notes };
  });
}

/** Bodies that are not what any route takes: broken JSON, numbers JSON cannot hold, too big, too deep. */
type Body = { text: string | Buffer; notes: string[] };
const brokenBody: fc.Arbitrary<Body> = fc.oneof<fc.Arbitrary<Body>[]>(
  fc.constantFrom('{"a":', "{", "[", '{"qr": "x",}', "nul\u0000l", "{'single': 1}", "", " ", "undefined", '{"a":1}{"b":2}', "\ufeff{}").map((t): Body => ({ text: t, notes: ["bad json"] })),
  fc.constantFrom('{"energyWh":1e999}', '{"amountCents":-1e999,"reference":"r"}', '{"creditLimitCents":1e999}', '{"target":{"energyWh":1e999},"qr":"qr-T1","payment":"prepaid"}', '{"target":{"durationS":1e400},"qr":"qr-T1","payment":"prepaid"}', '{"effectiveFrom":1e999,"periods":[]}').map((t): Body => ({ text: t, notes: ["infinite number"] })),
  fc.constant<Body>({ text: "[".repeat(50_000) + "]".repeat(50_000), notes: ["deep nesting"] }),
  fc.constant<Body>({ text: JSON.stringify({ a: "x".repeat(1_100_000) }), notes: ["over the body limit"] }),
  fc.constant<Body>({ text: Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x80, 0x81]), notes: ["not utf-8"] }),
  fc.constant<Body>({ text: '{"__proto__":{"role":"admin"},"constructor":{"prototype":{"role":"admin"}}}', notes: ["prototype keys"] }),
);

export interface Answer {
  /** -1 when no answer came (connection reset, refused); -3 for an event stream still silent. */
  status: number;
  contentType: string;
  text: string;
  error?: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/**
 * Sends one request as generated, without the normalisation a fetch() would do. A server-sent
 * event stream is read until its first event (or `streamMs`), then dropped.
 */
export async function send(base: string, r: FuzzRequest, streamMs = 300): Promise<Answer> {
  const a = await sendOnce(base, r, streamMs, agent);
  // A kept-alive socket the server had just closed (after a 431 or 413) is the client's problem,
  // not the server's: such a request is tried once more on a connection of its own.
  if (a.status !== -1) return a;
  const b = await sendOnce(base, r, streamMs, false);
  return b.status === -1 ? { ...b, error: `${a.error}; again on a new connection: ${b.error}` } : b;
}

function sendOnce(base: string, r: FuzzRequest, streamMs: number, via: http.Agent | false): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve) => {
    let req: http.ClientRequest;
    try {
      req = http.request({
        host: u.hostname,
        port: u.port,
        method: r.method,
        path: r.path,
        agent: via,
        headers: { ...r.headers, ...(r.body ? { "content-length": String(r.body.length) } : {}) },
        timeout: 15_000,
      });
    } catch (e) {
      resolve({ status: -2, contentType: "", text: "", error: `not sendable: ${(e as Error).message}` });
      return;
    }
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      const contentType = String(res.headers["content-type"] ?? "");
      const streaming = contentType.startsWith("text/event-stream");
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? -1, contentType, text: Buffer.concat(chunks).toString("utf8") });
      };
      if (streaming) {
        timer = setTimeout(() => {
          res.destroy();
          finish();
        }, streamMs);
      }
      res.on("data", (c: Buffer) => {
        chunks.push(c);
        if (streaming && /\n\n/.test(Buffer.concat(chunks).toString("utf8"))) {
          res.destroy();
          finish();
        }
      });
      res.on("end", finish);
      res.on("error", finish);
      res.on("close", finish);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    // An event stream may hold its headers back until its first event: after `streamMs` * 4 without
    // an answer it is taken as an open stream that has said nothing yet.
    if (/\/(events|stream)(\?|\/|$)/.test(r.path.split("#")[0]!)) {
      const quiet = setTimeout(() => {
        resolve({ status: -3, contentType: "", text: "", error: "event stream open, no headers yet" });
        req.destroy();
      }, streamMs * 4);
      req.on("close", () => clearTimeout(quiet));
    }
    req.on("error", (e) => resolve({ status: -1, contentType: "", text: "", error: e.message }));
    req.end(r.body);
  });
}

export function closeAgent(): void {
  agent.destroy();
}
