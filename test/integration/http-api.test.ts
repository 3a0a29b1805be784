import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECRET, seedFleet, testPlatform, type TestPlatform } from "../helpers/platform.ts";

let tp: TestPlatform;

beforeAll(async () => {
  tp = await testPlatform();
  await seedFleet(tp);
});
afterAll(async () => tp?.[Symbol.asyncDispose]());

describe("authentication and roles", () => {
  it("401 without a token, with a bad signature, or expired", async () => {
    const no = await fetch(`${tp.p.url}/v1/me`);
    expect(no.status).toBe(401);
    expect(((await no.json()) as any).error.code).toBe("unauthorized");
    const forged = await new SignJWT({ role: "admin" }).setProtectedHeader({ alg: "HS256" }).setSubject("x").setExpirationTime("1h").sign(new TextEncoder().encode("another-secret-0123456789"));
    expect((await tp.api("GET", "/v1/me", undefined, forged)).status).toBe(401);
    const expired = await new SignJWT({ role: "user" }).setProtectedHeader({ alg: "HS256" }).setSubject("U1").setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(new TextEncoder().encode(SECRET));
    expect((await tp.api("GET", "/v1/me", undefined, expired)).status).toBe(401);
    const noRole = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("U1").setExpirationTime("1h").sign(new TextEncoder().encode(SECRET));
    expect((await tp.api("GET", "/v1/me", undefined, noRole)).status).toBe(401);
  });

  it("403 for the wrong role", async () => {
    const user = await tp.token("U1", "user");
    const fr = await tp.token("FR1", "franchisee");
    const r = await tp.api("PUT", "/v1/admin/regions/R9", { name: "x", timezone: "UTC" }, user);
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe("forbidden");
    expect((await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 1 }, payment: "prepaid" }, tp.admin)).status).toBe(403);
    expect((await tp.api("GET", "/v1/me", undefined, fr)).status).toBe(403);
  });
});

describe("validation", () => {
  it("400 lists every problem with its path", async () => {
    const user = await tp.token("U1", "user");
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "", target: { energyWh: -1 }, payment: "cash" }, user);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("invalid_request");
    const paths = r.body.error.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(["body.qr", "body.payment"]));
    expect(paths.some((p: string) => p.startsWith("body.target"))).toBe(true);
  });

  it("rejects a tariff that does not cover the day, naming the period", async () => {
    const r = await tp.api("PUT", "/v1/admin/regions/R1/tariff", {
      periods: [
        { start: "00:00", end: "08:00", energyCentsPerKwh: 60, timeCentsPerHour: 0 },
        { start: "09:00", end: "24:00", energyCentsPerKwh: 120, timeCentsPerHour: 0 },
      ],
    });
    expect(r.status).toBe(400);
    expect(r.body.error.details).toContainEqual(expect.objectContaining({ path: "body.periods.1.start" }));
  });

  it("rejects unknown time zones, bad ids and malformed JSON", async () => {
    expect((await tp.api("PUT", "/v1/admin/regions/R2", { name: "x", timezone: "Mars/Olympus" })).status).toBe(400);
    const bad = await tp.api("PUT", "/v1/admin/regions/bad.id", { name: "x", timezone: "UTC" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe("params.regionId");
    const res = await fetch(`${tp.p.url}/v1/admin/regions/R3`, {
      method: "PUT",
      headers: { authorization: `Bearer ${tp.admin}`, "content-type": "application/json" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe("invalid_json");
  });

  it("404 for references to things that do not exist, 409 for a QR already in use", async () => {
    const r = await tp.api("PUT", "/v1/admin/terminals/T9", { qr: "q9", gatewayId: "nope", regionId: "R1", franchiseeId: "FR1" });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe("gateway_not_found");
    const dup = await tp.api("PUT", "/v1/admin/terminals/T9", { qr: "qr-T1", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe("qr_in_use");
    expect((await tp.api("GET", "/v1/sessions/S-nope", undefined, await tp.token("U1", "user"))).status).toBe(404);
  });
});

describe("tariff versions", () => {
  it("numbers each new version and keeps the old ones", async () => {
    const a = await tp.api("PUT", "/v1/admin/regions/R1/tariff", { periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 80 }] });
    const b = await tp.api("PUT", "/v1/admin/regions/R1/tariff", { periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 90 }] });
    expect(b.body.version).toBe(a.body.version + 1);
    expect(a.body.periods[0].timeCentsPerHour).toBe(0);
    const n = await tp.p.db.query("SELECT count(*)::int AS n FROM tariff_versions WHERE region_id = 'R1'");
    expect(n.rows[0].n).toBe(b.body.version);
  });
});

describe("operations", () => {
  it("serves health, readiness, Prometheus metrics and the OpenAPI document", async () => {
    expect((await fetch(`${tp.p.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${tp.p.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as any).checks).toEqual({ database: "ok", nats: "ok" });
    const metrics = await (await fetch(`${tp.p.url}/metrics`)).text();
    expect(metrics).toMatch(/vend_http_requests_total\{method="PUT",route="\/v1\/admin\/regions\/:regionId",status="200"\} \d+/);
    const doc = (await (await fetch(`${tp.p.url}/openapi.json`)).json()) as any;
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/charge-requests", "/v1/sessions/{sessionId}", "/v1/admin/regions/{regionId}/tariff"]));
    const body = doc.paths["/v1/charge-requests"].post.requestBody.content["application/json"].schema;
    expect(body.required).toEqual(expect.arrayContaining(["qr", "target", "payment"]));
  });
});
