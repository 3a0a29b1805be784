import { request } from "node:http";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedFleet, testPlatform, type TestPlatform } from "../helpers/platform.ts";
import { craftSession } from "../helpers/usage.ts";

// Answers of 1 KB and more go out compressed when the client accepts it; server-sent events and
// small answers stay as they are; compressed request bodies are inflated, broken ones refused.

const DAY = 86_400_000;
let tp: TestPlatform;
let admin: string;

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTP exchange with the bytes as sent (fetch would inflate them and hide the encoding). */
function raw(method: string, path: string, headers: Record<string, string>, body?: Buffer, firstChunkOnly = false): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(`${tp.p.url}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => {
        chunks.push(c);
        if (firstChunkOnly) {
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) });
          req.destroy();
        }
      });
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", (e) => (firstChunkOnly ? undefined : reject(e)));
    req.end(body);
  });
}

beforeAll(async () => {
  tp = await testPlatform({ USAGE_ROLL_S: "3600" }, { parts: { cutoff: false, faults: false, writer: false } });
  await seedFleet(tp, { terminals: ["T1"] });
  admin = await tp.token("admin", "admin");
  // 60 users with a session each, days ago: a report by user of several KB.
  await tp.p.db.query("INSERT INTO users (user_id, balance_cents) SELECT 'U' || i, 0 FROM generate_series(0, 59) i");
  const t0 = Date.now() - 3 * DAY;
  for (let i = 0; i < 60; i++)
    await craftSession(tp.p.db, { id: `S-${i}`, user: `U${i}`, terminal: "T1", franchisee: "FR1", start: t0 + i * 3_600_000, end: t0 + i * 3_600_000 + 600_000, startMwh: i * 10_000, energyMwh: 10_000, feeCents: 1 });
  await tp.p.control!.rollUsage();
});
afterAll(async () => {
  await tp?.[Symbol.asyncDispose]();
});

const report = `/v1/admin/reports/usage?groupBy=user&from=${Date.now() - 10 * DAY}&to=${Date.now()}`;

describe("compression", () => {
  it("a large answer goes out in gzip or br as accepted, the same JSON once inflated", async () => {
    const plain = await raw("GET", report, { authorization: `Bearer ${admin}` });
    expect(plain.status).toBe(200);
    expect(plain.headers["content-encoding"]).toBeUndefined();
    const json = JSON.parse(plain.body.toString("utf8"));
    expect(json.groups).toHaveLength(60);
    expect(plain.body.length).toBeGreaterThan(1024);

    const gz = await raw("GET", report, { authorization: `Bearer ${admin}`, "accept-encoding": "gzip" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gz.body.length).toBeLessThan(plain.body.length / 3);
    expect(JSON.parse(gunzipSync(gz.body).toString("utf8"))).toEqual(json);

    const br = await raw("GET", report, { authorization: `Bearer ${admin}`, "accept-encoding": "gzip, deflate, br" });
    expect(br.headers["content-encoding"]).toBe("br");
    expect(JSON.parse(brotliDecompressSync(br.body).toString("utf8"))).toEqual(json);
  });

  it("a small answer stays as it is", async () => {
    const r = await raw("GET", "/healthz", { "accept-encoding": "gzip" });
    expect(r.status).toBe(200);
    expect(r.headers["content-encoding"]).toBeUndefined();
  });

  it("server-sent events are never compressed, so each event arrives when it is sent", async () => {
    const fr = await tp.token("FR1", "franchisee");
    const r = await raw("GET", "/v1/franchisee/faults/stream", { authorization: `Bearer ${fr}`, "accept-encoding": "gzip, br" }, undefined, true);
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(r.headers["content-encoding"]).toBeUndefined();
    // Plain text on the wire, not a compressed stream's header bytes.
    expect(r.body.toString("utf8")).toMatch(/^(:|event:|id:|data:|retry:)/m);
  });

  it("a gzip request body is inflated; a broken one is refused with the error shape, and nothing is stored", async () => {
    const body = gzipSync(JSON.stringify({ name: "Gzipped", timezone: "Asia/Shanghai" }));
    const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json", "content-encoding": "gzip" };
    const ok = await raw("PUT", "/v1/admin/regions/RZ", headers, body);
    expect(ok.status).toBeLessThan(300);
    expect((await tp.p.db.query("SELECT name FROM regions WHERE region_id = 'RZ'")).rows).toEqual([{ name: "Gzipped" }]);

    const bad = await raw("PUT", "/v1/admin/regions/RB", headers, Buffer.from("not gzip at all"));
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body.toString("utf8"))).toMatchObject({ error: { code: "bad_request", message: expect.stringMatching(/decompress/) } });
    expect((await tp.p.db.query("SELECT count(*)::int AS n FROM regions WHERE region_id = 'RB'")).rows[0].n).toBe(0);

    // A small body that inflates past the 1 MB body limit is refused: the limit counts what it inflates to.
    const bomb = gzipSync(JSON.stringify({ name: "x".repeat(2 << 20), timezone: "Asia/Shanghai" }));
    expect(bomb.length).toBeLessThan(10_000);
    const big = await raw("PUT", "/v1/admin/regions/RX", headers, bomb);
    expect(big.status).toBe(413);
    expect((await tp.p.db.query("SELECT count(*)::int AS n FROM regions WHERE region_id = 'RX'")).rows[0].n).toBe(0);
  });
});
