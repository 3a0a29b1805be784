import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// Small limits here prove the 429s; every other test runs with the generous defaults.
let tp: TestPlatform;

beforeAll(async () => {
  tp = await testPlatform({ RATE_LIMIT_PUBLIC_MAX: "3", RATE_LIMIT_PRINCIPAL_MAX: "5", SSE_MAX_STREAMS: "2", DEMO_SIGN_IN: "true", RATE_LIMIT_WINDOW_S: "60" });
  await seedFleet(tp, { terminals: ["T1", "T2"] });
});
afterAll(async () => tp?.[Symbol.asyncDispose]());

const statuses = async (n: number, call: () => Promise<{ status: number }>) => {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await call()).status);
  return out;
};

function expectRateLimited(r: { status: number; body: any }) {
  expect(r.status).toBe(429);
  expect(r.body).toEqual({ error: { code: "rate_limited", message: expect.any(String) } });
}

describe("public calls, per client address", () => {
  it("terminal status, demo sign-in and scan-failure reports each answer 429 past their limit", async () => {
    const user = await tp.token("U1", "user");
    expect(await statuses(3, () => tp.api("GET", "/v1/terminals/T1"))).toEqual([200, 200, 200]);
    const status = await fetch(`${tp.p.url}/v1/terminals/T1`);
    expect(status.status).toBe(429);
    expect(Number(status.headers.get("retry-after"))).toBeGreaterThan(0);
    expectRateLimited({ status: status.status, body: await status.json() });
    // Another terminal is the same call: the address is what is counted.
    expectRateLimited(await tp.api("GET", "/v1/terminals/T2"));

    expect(await statuses(3, () => tp.api("POST", "/v1/demo/sign-in", { userId: "U9" }))).toEqual([200, 200, 200]);
    expectRateLimited(await tp.api("POST", "/v1/demo/sign-in", { userId: "U9" }));

    // Reports by different users from one address share the address's budget.
    const reporters = await Promise.all(["R1", "R2", "R3", "R4"].map((u) => tp.token(u, "user")));
    const reports = [];
    for (const t of reporters) reports.push(await tp.api("POST", "/v1/scan-failures", { terminalId: "T1", reason: "no scan" }, t));
    expect(reports.slice(0, 3).map((r) => r.status)).toEqual([202, 202, 202]);
    expectRateLimited(reports[3]!);
    // Calls without a public limit are untouched by these.
    expect((await tp.api("GET", "/v1/me", undefined, user)).status).toBe(200);
  });
});

describe("authenticated calls, per principal", () => {
  it("one user's requests past the limit answer 429; another user's and the admin's do not", async () => {
    const a = await tp.token("UA", "user");
    const b = await tp.token("UB", "user");
    expect(await statuses(5, () => tp.api("GET", "/v1/me", undefined, a))).toEqual([200, 200, 200, 200, 200]);
    expectRateLimited(await tp.api("GET", "/v1/me", undefined, a));
    // Every call counts against the same principal.
    expectRateLimited(await tp.api("GET", "/v1/me/usage", undefined, a));
    expect((await tp.api("GET", "/v1/me", undefined, b)).status).toBe(200);
    // A new token for the same user is the same principal.
    expectRateLimited(await tp.api("GET", "/v1/me", undefined, await tp.token("UA", "user")));
    // Same id, another role: another principal.
    const fr = await tp.token("UA", "franchisee");
    expect((await tp.api("GET", "/v1/franchisee/terminals", undefined, fr)).status).toBe(200);
    // Admins have their own, larger limit (RATE_LIMIT_ADMIN_MAX): seeding used more than 5.
    expect(await statuses(6, () => tp.api("GET", "/v1/admin/terminals/T1/readings"))).toEqual(Array(6).fill(200));
  });
});

describe("event streams, per franchisee", () => {
  it("past SSE_MAX_STREAMS concurrent streams answer 429; a closed one frees its slot", async () => {
    const fr1 = await tp.token("FR3", "franchisee");
    const fr2 = await tp.token("FR2", "franchisee");
    const open = (token: string) => {
      const ctl = new AbortController();
      return fetch(`${tp.p.url}/v1/franchisee/faults/stream`, { headers: { authorization: `Bearer ${token}` }, signal: ctl.signal }).then(async (res) => ({
        status: res.status,
        body: res.status === 200 ? undefined : await res.json(),
        close: () => ctl.abort(),
      }));
    };
    const first = await open(fr1);
    const second = await open(fr1);
    expect([first.status, second.status]).toEqual([200, 200]);
    const third = await open(fr1);
    expectRateLimited(third);
    const other = await open(fr2);
    expect(other.status).toBe(200);
    // Freed when the server sees the client go (polled on the metrics, which have no limit: each
    // attempt to open would count against the principal's 5).
    const clients = async () => Number(/^vend_sse_clients (\d+)/m.exec(await (await fetch(`${tp.p.url}/metrics`)).text())?.[1]);
    expect(await clients()).toBe(3);
    first.close();
    await until(async () => (await clients()) === 2);
    const again = await open(fr1);
    expect(again.status).toBe(200);
    for (const s of [second, other, again]) s.close();
  });
});
