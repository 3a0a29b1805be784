import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { NatsConnection } from "@nats-io/nats-core";
import { idSchema, localTime, type Subjects } from "../../contracts/index.ts";
import { signToken } from "../auth.ts";
import type { Db } from "../db.ts";
import { ApiError, notFound } from "../errors.ts";
import { terminalById } from "../registry.ts";
import { terminalLiveState } from "../terminal-state.ts";
import type { LiveReader } from "../live.ts";
import { tariffInForce } from "../tariffs.ts";
import type { App, Hook } from "./server.ts";
import { content, publicResponses } from "./schemas.ts";
import { tariffPeriodSchema } from "../../contracts/index.ts";

const html = (summary: string, operationId: string) => ({ hide: true, security: [], operationId, summary });

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "pages");
/** The pages' files: nothing else under control/pages is served. */
const assets: Record<string, string> = {
  "charge.js": "text/javascript; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "admin.js": "text/javascript; charset=utf-8",
  "i18n.js": "text/javascript; charset=utf-8",
  "api.js": "text/javascript; charset=utf-8",
  "pages.css": "text/css; charset=utf-8",
  "favicon.svg": "image/svg+xml",
};

/**
 * The user's charge page (`/t/<terminalId>`, what a terminal's QR code links to), its assets, the
 * public terminal status it shows before sign-in, and the demo sign-in (docs/pages.md).
 */
export function pageRoutes(
  app: App,
  o: {
    db: Db;
    nc: NatsConnection;
    subjects: Subjects;
    live: LiveReader;
    clock: () => number;
    offlineMs: number;
    demoSignIn: boolean;
    jwtSecret: string;
    /** `iss` and `aud` of the tokens the demo sign-in issues (JWT_ISSUER, JWT_AUDIENCE). */
    claims: { issuer?: string | undefined; audience?: string | undefined };
    publicLimit: (name: string) => Hook;
  },
) {
  const file = (name: string) => readFile(join(dir, name));

  // Any id gets the page, which says in words that a code is unknown: a person who scanned a bad
  // code should not read a JSON error. The page asks the API, which checks the id.
  app.get("/t/:terminalId", { schema: { ...html("The charge page a terminal's QR code links to", "chargePage"), params: z.object({ terminalId: z.string().min(1).max(512) }), response: publicResponses({ 200: content("text/html", "the page") }) } }, async (_req, reply) =>
    reply.type("text/html; charset=utf-8").header("cache-control", "no-cache").send(await file("charge.html")),
  );

  app.get("/console", { schema: { ...html("The franchisee console", "consolePage"), response: publicResponses({ 200: content("text/html", "the page") }) } }, async (_req, reply) =>
    reply.type("text/html; charset=utf-8").header("cache-control", "no-cache").send(await file("console.html")),
  );

  // The operator's page: it signs in with an admin token (npm run token), never a demo sign-in.
  app.get("/admin", { schema: { ...html("The admin page (it signs in with an admin token)", "adminPage"), response: publicResponses({ 200: content("text/html", "the page") }) } }, async (_req, reply) =>
    reply.type("text/html; charset=utf-8").header("cache-control", "no-cache").send(await file("admin.html")),
  );

  // The pages link the icon; a browser that asks for /favicon.ico anyway (other pages, bookmarks) gets it too.
  app.get("/favicon.ico", { schema: { ...html("The pages' icon", "favicon"), response: publicResponses({ 200: content("image/svg+xml", "the icon") }) } }, async (_req, reply) =>
    reply.type("image/svg+xml").header("cache-control", "public, max-age=86400").send(await file("favicon.svg")),
  );

  app.get("/pages/:name", { schema: { ...html("The pages' scripts, styles and icon", "pageAsset"), params: z.object({ name: z.string().max(64) }), response: publicResponses({ 200: content("text/plain", "the file (its own content type)") }, [404]) } }, async (req, reply) => {
    // Own keys only: `__proto__` or `constructor` must not reach the file system as a name.
    const type = Object.hasOwn(assets, req.params.name) ? assets[req.params.name] : undefined;
    if (!type) throw notFound("page_asset", req.params.name);
    return reply.type(type).header("cache-control", "public, max-age=300").send(await file(req.params.name));
  });

  /** What anyone who scanned the code may see: the terminal, whether it can charge now, the price now. */
  app.get("/v1/terminals/:terminalId", {
      onRequest: o.publicLimit("read terminal status"),
      schema: {
        tags: ["public"],
        operationId: "getTerminalStatus",
        summary: "What anyone who scanned the code may see: whether the terminal can charge now, and the price now",
        security: [],
        params: z.object({ terminalId: idSchema }),
        response: publicResponses(
          {
            200: z
              .object({
                terminalId: idSchema,
                qr: z.string(),
                regionId: idSchema,
                timezone: z.string(),
                state: z.string(),
                priceNow: tariffPeriodSchema.nullable(),
              })
              .loose(),
          },
          [404],
        ),
      },
    }, async (req) => {
    const now = o.clock();
    const term = await terminalById(o.db, req.params.terminalId);
    if (!term) throw notFound("terminal", req.params.terminalId);
    const { state } = await terminalLiveState(o, term, now);
    const tv = await tariffInForce(o.db, term.regionId, now);
    const l = localTime(now, term.timezone);
    const hhmm = `${String(Math.floor(l.msOfDay / 3_600_000)).padStart(2, "0")}:${String(Math.floor(l.msOfDay / 60_000) % 60).padStart(2, "0")}`;
    const period = tv?.periods.find((p) => p.start <= hhmm && hhmm < p.end) ?? null;
    // Extension (1.1): why a terminal in maintenance is out of service, and when it is expected back.
    const maintenance = term.maintenance && { reason: term.maintenance.reason, expectedReturnAt: term.maintenance.expectedReturnAt };
    return { terminalId: term.terminalId, qr: term.qr, regionId: term.regionId, timezone: term.timezone, state, priceNow: period, maintenance };
  });

  app.post(
    "/v1/demo/sign-in",
    {
      onRequest: o.publicLimit("sign in"),
      schema: {
        tags: ["public"],
        operationId: "demoSignIn",
        summary: "The demo sign-in: a user or franchisee token for any id (only with DEMO_SIGN_IN)",
        security: [],
        body: z.union([z.object({ userId: idSchema }).strict(), z.object({ franchiseeId: idSchema }).strict()]),
        response: publicResponses({ 200: z.union([z.object({ token: z.string(), userId: idSchema }), z.object({ token: z.string(), franchiseeId: idSchema })]) }, [404]),
      },
    },
    async (req) => {
      if (!o.demoSignIn) throw new ApiError(404, "not_found", "the demo sign-in is off (DEMO_SIGN_IN)");
      const b = req.body;
      if ("userId" in b) return { token: await signToken(o.jwtSecret, b.userId, "user", 12 * 3600, o.claims), userId: b.userId };
      return { token: await signToken(o.jwtSecret, b.franchiseeId, "franchisee", 12 * 3600, o.claims), franchiseeId: b.franchiseeId };
    },
  );
}
