import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorBodySchema } from "../../contracts/index.ts";
import { testPlatform, type TestPlatform } from "../helpers/platform.ts";

/** What the HTTP fuzz run found (test/integration/fuzz-http.test.ts), each pinned by one request. */

let tp: TestPlatform;
let user: string;

beforeAll(async () => {
  tp = await testPlatform();
  user = await tp.token("U1", "user");
});
afterAll(async () => {
  await tp?.[Symbol.asyncDispose]();
});

/** A request sent as written (fetch would normalise the path), its answer parsed. */
function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  const u = new URL(tp.p.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, headers, agent: false }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("answers the HTTP fuzz run found wrong", () => {
  it.each(["__proto__", "constructor", "hasOwnProperty"])("a page asset named %s is not found (it answered 500)", async (name) => {
    const r = await raw(`/pages/${name}`);
    expect(r.status).toBe(404);
    expect(errorBodySchema.safeParse(r.body).success).toBe(true);
  });

  it("a session id that cannot be a subject token is refused with 400 (its event stream answered 500)", async () => {
    const r = await raw(`/v1/sessions/S%0A1/events`, { authorization: `Bearer ${user}` });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: "invalid_request" } });
  });

  it.each(["/v1/franchisee/package?to=9007199254740990&format=csv", "/v1/franchisee/package?from=9007199254740000&to=9007199254740990"])(
    "a report reaching past the year 9999 is refused with 400 (%s answered 500)",
    async (path) => {
      const r = await raw(path, { authorization: `Bearer ${await tp.token("FR1", "franchisee")}` });
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ error: { code: "invalid_request" } });
    },
  );

  it("a malformed percent-encoding in the path answers 400 in the protocol's shape", async () => {
    const r = await raw("/v1/terminals/%zz");
    expect(r.status).toBe(400);
    expect(errorBodySchema.safeParse(r.body).success, JSON.stringify(r.body)).toBe(true);
  });

  it("headers past Node's limit answer 431 in the protocol's shape", async () => {
    const r = await raw("/v1/me", { authorization: `Bearer ${"A".repeat(20_000)}` });
    expect(r.status).toBe(431);
    expect(r.body).toEqual({ error: { code: "headers_too_large", message: expect.any(String) } });
  });
});
