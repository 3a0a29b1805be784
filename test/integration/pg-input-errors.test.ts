import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeLogger } from "../../cli/index.ts";
import { createApp, type App, createMetrics } from "../../control/internal.ts";
import { newRegistry } from "../../control/index.ts";
import { pgClient } from "../helpers/database.ts";
import { PG_ADMIN_URL } from "../helpers/env.ts";

// The edge refuses U+0000 before any query; should a string reach PostgreSQL some other way (one
// the edge cannot see, made here inside the handler), PostgreSQL's refusal is still a 400.
let app: App;
let db: Awaited<ReturnType<typeof pgClient>>;

beforeAll(async () => {
  db = await pgClient(PG_ADMIN_URL);
  ({ app } = await createApp({
    log: makeLogger("silent"),
    metrics: createMetrics(newRegistry(false)),
    authenticate: async () => ({ sub: "U1", role: "user" }),
    limits: { windowMs: 60_000, publicMax: 1000, principalMax: 1000, adminMax: 1000 },
  }));
  app.get("/text", async () => (await db.query("SELECT $1::text AS t", ["a\u0000b"])).rows);
  app.get("/jsonb", async () => (await db.query("SELECT $1::jsonb AS j", ['{"k": "a\\u0000b"}'])).rows);
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await db?.[Symbol.asyncDispose]();
});

describe("PostgreSQL's refusal of a character", () => {
  it.each([
    ["text (22021)", "/text"],
    ["jsonb (22P05)", "/jsonb"],
  ])("%s answers 400 invalid_request, not 500", async (_name, url) => {
    const r = await app.inject({ method: "GET", url });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({ error: { code: "invalid_request", message: expect.any(String) } });
  });
});
