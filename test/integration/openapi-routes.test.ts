import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ZodType } from "zod";
import { routeTable, type RouteEntry } from "../../control/internal.ts";
import { seedFleet, simGateway, terminalsSeen, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// Every route of the API, from the route table itself (so routes added later are covered without
// editing this file): each documents its answers (a response schema per status, an operationId, a
// summary), and each real answer it gives (the calls below, successes and errors) has a documented
// status and matches that status's schema.
let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let routes: RouteEntry[];
const tokens: Record<string, string> = {};
const ids: Record<string, string> = {};

/** Statuses each route answered in this run, by route key. */
const seen = new Map<string, Set<number>>();
const problems: string[] = [];
const key = (r: RouteEntry) => `${r.method} ${r.url}`;

/** The schema a route documents for a status and content type (null: not documented). */
function documented(r: RouteEntry, status: number, contentType: string): { schema: ZodType; json: boolean } | null {
  const resp = r.schema?.response as Record<string, any> | undefined;
  const s = resp?.[status] ?? resp?.[`${String(status)[0]}xx`];
  if (!s) return null;
  if (s.content) {
    const types = Object.keys(s.content);
    const t = types.find((x) => contentType.startsWith(x)) ?? (types.length === 1 ? types[0] : undefined);
    if (!t) return null;
    return { schema: s.content[t].schema, json: t.includes("json") };
  }
  return { schema: s, json: true };
}

/** Calls a route and checks its answer against its documentation; returns status and body. */
async function call(r: RouteEntry, o: { path?: string; token?: string | null | undefined; body?: unknown; raw?: { headers: Record<string, string>; body: string }; query?: string; expect?: number } = {}): Promise<{ status: number; body: any }> {
  const path = (o.path ?? fill(r.url)) + (o.query ? `?${o.query}` : "");
  const headers: Record<string, string> = {};
  const token = o.token === undefined ? tokenFor(r) : o.token;
  if (token) headers.authorization = `Bearer ${token}`;
  if (o.body !== undefined) headers["content-type"] = "application/json";
  if (o.raw) Object.assign(headers, o.raw.headers);
  const stream = isStream(r);
  const ctl = new AbortController();
  const res = await fetch(tp.p.url + path, { method: r.method, headers, body: o.raw ? o.raw.body : o.body === undefined ? null : JSON.stringify(o.body), signal: ctl.signal });
  const ct = res.headers.get("content-type") ?? "";
  let text = "";
  if (stream && res.status === 200) ctl.abort();
  else text = await res.text();
  (seen.get(key(r)) ?? seen.set(key(r), new Set()).get(key(r))!).add(res.status);
  const doc = documented(r, res.status, ct);
  const where = `${r.method} ${path} → ${res.status}`;
  if (!doc) problems.push(`${where}: status (or content type ${ct}) not documented for ${key(r)}`);
  else if (!(stream && res.status === 200)) {
    let value: unknown = text;
    if (doc.json) {
      try {
        value = JSON.parse(text);
      } catch {
        problems.push(`${where}: documented as JSON, answered ${JSON.stringify(text.slice(0, 80))}`);
      }
    }
    const parsed = doc.schema.safeParse(value);
    if (!parsed.success) problems.push(`${where}: answer does not match its schema: ${parsed.error.message.slice(0, 300)} in ${text.slice(0, 200)}`);
  }
  if (o.expect !== undefined && res.status !== o.expect) problems.push(`${where}: expected ${o.expect}: ${text.slice(0, 200)}`);
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

const isStream = (r: RouteEntry) => Object.values((r.schema?.response ?? {}) as Record<string, any>).some((s) => s?.content?.["text/event-stream"]);
const isPublic = (r: RouteEntry) => Array.isArray(r.schema?.security) && r.schema.security.length === 0;
const tags = (r: RouteEntry): string[] => r.schema?.tags ?? [];
function tokenFor(r: RouteEntry): string | null {
  if (isPublic(r)) return null;
  if (tags(r).includes("user")) return tokens.user!;
  if (tags(r).includes("franchisee")) return tokens.franchisee!;
  return tokens.admin!;
}
/** A path with each parameter replaced by an id that exists (or a plausible one). */
function fill(url: string): string {
  return url.replace(/:([A-Za-z]+)/g, (_, name: string) => encodeURIComponent(ids[name] ?? "X1"));
}
const route = (method: string, url: string) => {
  const r = routes.find((x) => x.method === method && x.url === url);
  if (!r) throw new Error(`no route ${method} ${url}`);
  return r;
};

beforeAll(async () => {
  tp = await testPlatform({ PAYMENT_SIM: "true", DEMO_SIGN_IN: "true", CONTROL_TICK_MS: "100" });
  routes = routeTable(tp.p.control!.app);
  // 100 c per Wh: a short charge costs something to refund and owe.
  await seedFleet(tp, { terminals: ["T1"], periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100_000, timeCentsPerHour: 0 }] });
  gw = await simGateway(tp, { T1: { limits: false } }, { tickMs: 100 });
  tokens.admin = tp.admin;
  tokens.user = await tp.token("U1", "user");
  tokens.franchisee = await tp.token("FR1", "franchisee");
  Object.assign(ids, { terminalId: "T1", regionId: "R1", franchiseeId: "FR1", gatewayId: "G1", userId: "U1", provider: "sim", name: "pages.css", month: new Date().toISOString().slice(0, 7) });
  await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 10_000, reference: "seed" });
  await terminalsSeen(tp, gw);
  const s = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 2 }, payment: "prepaid" }, tokens.user);
  ids.sessionId = s.body.sessionId;
  await until(async () => (await tp.api("GET", `/v1/sessions/${ids.sessionId}`, undefined, tokens.user)).body.state === "completed", 30_000);
  ids.faultId = (await tp.api("POST", "/v1/scan-failures", { qr: "qr-T1", reason: "blurred" }, tokens.user)).body.faultId;
  const o = await tp.api("POST", "/v1/me/payment-orders", { provider: "sim", amountCents: 100, idempotencyKey: "k1" }, tokens.user);
  ids.orderId = o.body.orderId;
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

describe("the route table", () => {
  it("documents every route: response schemas with a success status, operationId and summary", () => {
    expect(routes.length).toBeGreaterThan(30);
    const missing = routes
      .filter((r) => {
        const resp = r.schema?.response as Record<string, unknown> | undefined;
        return !resp || !Object.keys(resp).some((s) => /^2/.test(s)) || !r.schema?.operationId || !r.schema?.summary;
      })
      .map((r) => `${key(r)}: ${!r.schema?.response ? "no response schema" : !r.schema?.operationId ? "no operationId" : !r.schema?.summary ? "no summary" : "no 2xx response"}`);
    expect(missing, `routes without full documentation:\n${missing.join("\n")}`).toEqual([]);
    const opIds = routes.map((r) => r.schema!.operationId as string);
    expect(opIds.filter((x, i) => opIds.indexOf(x) !== i), "operationIds used twice").toEqual([]);
    // Every authenticated route documents 401 and 403; every route the error shape for 400.
    const noAuthErrors = routes.filter((r) => !isPublic(r) && !(r.schema!.response[401] && r.schema!.response[403])).map(key);
    expect(noAuthErrors, "authenticated routes that do not document 401 and 403").toEqual([]);
  });

  it("the OpenAPI document carries them: public routes without a security requirement, 201 where 201", async () => {
    const doc = (await tp.api("GET", "/openapi.json")).body;
    for (const r of routes.filter((x) => !x.schema?.hide)) {
      const path = r.url.replace(/:([A-Za-z]+)/g, "{$1}");
      const op = doc.paths?.[path]?.[r.method.toLowerCase()];
      expect(op, `${key(r)} missing from the OpenAPI document`).toBeTruthy();
      expect(op.operationId).toBe(r.schema!.operationId);
      expect(op.summary).toBe(r.schema!.summary);
      expect(Object.keys(op.responses).sort()).toEqual(Object.keys(r.schema!.response).sort());
      if (isPublic(r)) expect(op.security, `${key(r)} is public`).toEqual([]);
      else expect(op.security, `${key(r)} inherits the bearer requirement`).toBeUndefined();
    }
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(doc.paths["/v1/charge-requests"].post.responses)).toContain("201");
    expect(doc.paths["/v1/charge-requests"].post.responses["201"]).toBeTruthy();
    expect(doc.paths["/v1/payments/notify/{provider}"].post.security).toEqual([]);
  });
});

describe("every route's real answers match its documented schema", () => {
  it("successful calls", async () => {
    problems.length = 0;
    const u = tokens.user;
    const calls: [string, string, Parameters<typeof call>[1]][] = [
      ["GET", "/healthz", { expect: 200 }],
      ["GET", "/readyz", { expect: 200 }],
      ["GET", "/metrics", { expect: 200 }],
      ["GET", "/openapi.json", { expect: 200 }],
      ["GET", "/t/:terminalId", { expect: 200 }],
      ["GET", "/console", { expect: 200 }],
      ["GET", "/favicon.ico", { expect: 200 }],
      ["GET", "/pages/:name", { expect: 200 }],
      ["GET", "/v1/terminals/:terminalId", { expect: 200 }],
      ["POST", "/v1/demo/sign-in", { body: { userId: "U5" }, expect: 200 }],
      ["PUT", "/v1/admin/regions/:regionId", { body: { name: "Region 1", timezone: "Asia/Shanghai" }, expect: 200 }],
      ["PUT", "/v1/admin/franchisees/:franchiseeId", { body: { name: "Franchisee 1" }, expect: 200 }],
      ["PUT", "/v1/admin/franchisees/:franchiseeId/webhook", { body: { url: "http://127.0.0.1:9/hook", secret: "0123456789abcdef" }, expect: 200 }],
      ["PUT", "/v1/admin/gateways/:gatewayId", { body: { regionId: "R1" }, expect: 200 }],
      ["PUT", "/v1/admin/terminals/:terminalId", { body: { qr: "qr-T1", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" }, expect: 200 }],
      ["PUT", "/v1/admin/regions/:regionId/tariff", { body: { effectiveFrom: 0, periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100_000 }] }, expect: 201 }],
      ["PUT", "/v1/admin/users/:userId", { body: { creditLimitCents: 500 }, expect: 200 }],
      ["POST", "/v1/admin/users/:userId/topups", { body: { amountCents: 10, reference: "t-1" }, expect: 201 }],
      ["POST", "/v1/admin/users/:userId/topups", { body: { amountCents: 10, reference: "t-1" }, expect: 200 }],
      ["GET", "/v1/admin/terminals/:terminalId/readings", { query: "limit=5", expect: 200 }],
      ["GET", "/v1/admin/faults/:faultId", { expect: 200 }],
      ["GET", "/v1/admin/reports/usage", { query: "groupBy=terminal", expect: 200 }],
      ["GET", "/v1/admin/regions/:regionId/insights", { expect: 200 }],
      ["GET", "/v1/admin/payments/refused-notifications", { expect: 200 }],
      ["POST", "/v1/admin/payments/reconcile", { body: { olderThanS: 3600 }, expect: 200 }],
      // Its body may be left out (olderThanS 60), as a retire's may (below): no 400 for a bare POST.
      ["POST", "/v1/admin/payments/reconcile", { expect: 200 }],
      ["POST", "/v1/admin/sessions/:sessionId/refunds", { body: { amountCents: 1, reason: "test", idempotencyKey: "r1" }, expect: 201 }],
      ["POST", "/v1/admin/sessions/:sessionId/refunds", { body: { amountCents: 1, reason: "test", idempotencyKey: "r1" }, expect: 200 }],
      ["GET", "/v1/me", { expect: 200 }],
      ["GET", "/v1/me/usage", { expect: 200 }],
      ["GET", "/v1/me/sessions", { query: "limit=5", expect: 200 }],
      ["GET", "/v1/sessions/:sessionId", { expect: 200 }],
      ["GET", "/v1/sessions/:sessionId/receipt", { expect: 200 }],
      ["GET", "/v1/sessions/:sessionId/events", { expect: 200 }],
      ["POST", "/v1/me/payment-orders", { body: { provider: "sim", amountCents: 100, idempotencyKey: "k2" }, expect: 201 }],
      ["POST", "/v1/me/payment-orders", { body: { provider: "sim", amountCents: 100, idempotencyKey: "k2" }, expect: 200 }],
      ["GET", "/v1/me/payment-orders/:orderId", { expect: 200 }],
      ["POST", "/v1/scan-failures", { body: { terminalId: "T1", reason: "again" }, expect: 202 }],
      ["GET", "/v1/franchisee/terminals", { expect: 200 }],
      ["GET", "/v1/franchisee/faults", { expect: 200 }],
      ["GET", "/v1/franchisee/faults/stream", { expect: 200 }],
      ["POST", "/v1/franchisee/faults/:faultId/ack", { expect: 202 }],
      ["POST", "/v1/franchisee/faults/:faultId/close", { body: { note: "a user's mistake" }, expect: 200 }],
      ["GET", "/v1/franchisee/usage", { expect: 200 }],
      ["GET", "/v1/franchisee/package", { expect: 200 }],
      ["GET", "/v1/franchisee/package", { query: "format=csv", expect: 200 }],
      ["GET", "/v1/franchisee/statements/:month", { expect: 200 }],
      ["GET", "/v1/franchisee/statements/:month", { query: "format=csv", expect: 200 }],
    ];
    for (const [m, url, o] of calls) await call(route(m, url), o);
    // A tariff version read; maintenance and retirement on objects of their own (T1, R1, FR1 and
    // G1 keep charging below): a terminal out of service and back, then what ends, leaves first.
    await call(route("GET", "/v1/admin/regions/:regionId/tariffs/:version"), { path: "/v1/admin/regions/R1/tariffs/1", expect: 200 });
    await tp.api("PUT", "/v1/admin/regions/R9", { name: "Region 9", timezone: "Asia/Shanghai", capacityKw: 50 });
    await tp.api("PUT", "/v1/admin/franchisees/FR9", { name: "Franchisee 9" });
    await tp.api("PUT", "/v1/admin/gateways/G9", { regionId: "R9" });
    await tp.api("PUT", "/v1/admin/terminals/T9", { qr: "qr-T9", gatewayId: "G9", regionId: "R9", franchiseeId: "FR9", location: { latitude: 31.2304, longitude: 121.4737, address: null } });
    await call(route("PUT", "/v1/admin/terminals/:terminalId/maintenance"), { path: "/v1/admin/terminals/T9/maintenance", body: { reason: "relay replaced", expectedReturnAt: 1_900_000_000_000 }, expect: 200 });
    await call(route("DELETE", "/v1/admin/terminals/:terminalId/maintenance"), { path: "/v1/admin/terminals/T9/maintenance", expect: 200 });
    await call(route("POST", "/v1/admin/terminals/:terminalId/retire"), { path: "/v1/admin/terminals/T9/retire", body: { reason: "site closed" }, expect: 200 });
    await call(route("POST", "/v1/admin/gateways/:gatewayId/retire"), { path: "/v1/admin/gateways/G9/retire", body: { reason: "site closed" }, expect: 200 });
    await call(route("POST", "/v1/admin/franchisees/:franchiseeId/retire"), { path: "/v1/admin/franchisees/FR9/retire", body: {}, expect: 200 });
    await call(route("POST", "/v1/admin/regions/:regionId/retire"), { path: "/v1/admin/regions/R9/retire", expect: 200 });
    // Paid in through the provider, and the money paid out and back: 201s of their own.
    const sim = tp.p.control!.simProvider!;
    const paid = await sim.pay(ids.orderId!, { payerRef: "openid-U1", notify: false });
    await call(route("POST", "/v1/payments/notify/:provider"), { raw: paid.notification, expect: 200 });
    await call(route("POST", "/v1/payments/notify/:provider"), { raw: paid.notification, expect: 401 });
    await call(route("POST", "/v1/me/withdrawals"), { body: { amountCents: 10, idempotencyKey: "w1" }, expect: 201 });
    await call(route("POST", "/v1/admin/users/:userId/withdrawals"), { body: { amountCents: 10, reason: "asked by phone", idempotencyKey: "aw1" }, expect: 201 });
    // A postpaid debt paid from the wallet.
    await tp.api("PUT", "/v1/admin/users/U1", { creditLimitCents: 1000 });
    const s = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 1 }, payment: "postpaid" }, u);
    await until(async () => (await tp.api("GET", `/v1/sessions/${s.body.sessionId}`, undefined, u)).body.state === "completed", 30_000);
    await call(route("POST", "/v1/me/debt-payments"), { body: { idempotencyKey: "d1" }, expect: 201 });
    // A charge and its stop.
    const c = await call(route("POST", "/v1/charge-requests"), { body: { qr: "qr-T1", target: { energyWh: 50 }, payment: "prepaid" }, expect: 201 });
    await call(route("POST", "/v1/sessions/:sessionId/stop"), { path: `/v1/sessions/${c.body.sessionId}/stop`, expect: 202 });
    expect(problems, problems.join("\n")).toEqual([]);
  }, 90_000);

  it("every route, called as a client that knows only the route table: with its role, without a token, with another role", async () => {
    problems.length = 0;
    for (const r of routes) {
      const write = ["POST", "PUT", "PATCH"].includes(r.method);
      // With the route's own role and an empty body (or none): a success or a documented refusal.
      await call(r, write ? { body: {} } : {});
      if (isPublic(r)) continue;
      await call(r, { token: null, ...(write ? { body: {} } : {}), expect: 401 });
      const wrong = tags(r).includes("user") ? tokens.franchisee : tags(r).includes("franchisee") ? tokens.user : tokens.user;
      await call(r, { token: wrong, ...(write ? { body: {} } : {}), expect: 403 });
    }
    // A NUL in the query is refused on any route, in the error shape.
    for (const r of routes.filter((x) => x.method === "GET" && !isStream(x))) await call(r, { query: "q=%00", token: tokenFor(r) });
    expect(problems, problems.join("\n")).toEqual([]);
    // Every route's success answer was checked against its schema too, not only its refusals: a
    // route added without a successful call above fails here until one is added.
    const never2xx = routes.filter((r) => ![...(seen.get(key(r)) ?? [])].some((s) => s >= 200 && s < 300)).map(key);
    expect(never2xx, `routes whose success answer no call here reached (add them to "successful calls")`).toEqual([]);
  }, 120_000);
});
