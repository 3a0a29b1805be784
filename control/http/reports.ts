import { z } from "zod";
import { ApiError } from "../errors.ts";
import { readLagMs, type Db } from "../db.ts";
import { emptyTotals, usageReport, type GroupBy } from "../reports/usage.ts";
import { regionInsights } from "../reports/insights.ts";
import { buildPackage, packageCsv } from "../reports/package.ts";
import { idSchema } from "../../contracts/index.ts";
import type { App, Hook } from "./server.ts";
import { responses, usageTotals } from "./schemas.ts";

const period = { from: z.number(), to: z.number() };
const group = (key: string) => z.object({ [key]: z.string(), ...usageTotals });
const insightsResponse = z
  .object({
    regionId: idSchema,
    timezone: z.string(),
    ...period,
    installed: z.number().int(),
    utilisation: z.array(z.number()),
    peak: z.object({ busy: z.number(), at: z.number().nullable(), ofInstalled: z.number() }).loose(),
    saturatedHours: z.array(z.number()),
    idleHours: z.array(z.number()),
    suggestedPeriods: z.array(z.object({ start: z.string(), end: z.string(), kind: z.enum(["peak", "flat", "valley"]) })),
  })
  .loose();
const packageResponse = z
  .object({
    franchiseeId: idSchema,
    ...period,
    generatedAt: z.number(),
    totals: z.object(usageTotals),
    terminals: z.array(z.object({ terminalId: z.string(), regionId: z.string(), ...usageTotals, busyShare: z.number(), faultsOpened: z.number().int() }).loose()),
    faults: z.array(z.record(z.string(), z.unknown())),
    pendingSessions: z.number().int(),
  })
  .loose();

const DAY = 86_400_000;
/** The longest range one report may cover. */
const MAX_RANGE_MS = 400 * DAY;

/** The latest instant a report may reach: 9999-12-31T23:59:59.999Z (a later one is no date at all). */
const MAX_TS = 253_402_300_799_999;
const range = {
  from: z.coerce.number().int().nonnegative().max(MAX_TS).optional(),
  to: z.coerce.number().int().positive().max(MAX_TS).optional(),
};

/** [from, to) in ms; by default the 30 days up to now. */
function window(q: { from?: number | undefined; to?: number | undefined }, now: number): { from: number; to: number } {
  const to = q.to ?? now;
  const from = q.from ?? to - 30 * DAY;
  if (from >= to) throw new ApiError(400, "invalid_request", "from must be before to");
  if (to - from > MAX_RANGE_MS) throw new ApiError(400, "invalid_request", `a report covers at most ${MAX_RANGE_MS / DAY} days`);
  return { from, to };
}

/** Each group named by its kind's id field (`userId`, `terminalId`, …), as the protocol's answers. */
const named = (groupBy: GroupBy, groups: Awaited<ReturnType<typeof usageReport>>) => groups.map(({ id, ...t }) => ({ [`${groupBy}Id`]: id, ...t }));

/** The usage reports of the protocol (flows 107-110), for admins, users and franchisees. */
export function reportRoutes(
  app: App,
  o: { db: Db; clock: () => number; admin: Hook; user: Hook; franchisee: Hook },
) {
  const me = (req: { principal?: { sub: string } }) => req.principal!.sub;
  // Every report says how old its data may be: `Vv-Read-Lag-Ms`, the replay lag of the standby it
  // was read from (0 on the primary), measured at most once a second.
  let lag: { at: number; ms: Promise<number> } | null = null;
  const stamp = async (_req: unknown, reply: { header(k: string, v: string): unknown }) => {
    const now = Date.now();
    if (!lag || now - lag.at > 1000) lag = { at: now, ms: readLagMs(o.db).catch(() => -1) };
    const ms = await lag.ms;
    if (ms >= 0) reply.header("vv-read-lag-ms", String(ms));
  };

  app.get(
    "/v1/admin/reports/usage",
    {
      onRequest: o.admin,
      preHandler: stamp,
      schema: {
        tags: ["admin"],
        operationId: "usageReport",
        summary: "Energy, fees, sessions and the hourly curve per user, terminal, region or franchisee",
        querystring: z.object({ groupBy: z.enum(["user", "terminal", "region", "franchisee"]), ...range }),
        response: responses({ 200: z.object({ groupBy: z.string(), ...period, groups: z.array(z.record(z.string(), z.unknown())) }) }),
      },
    },
    async (req) => {
      const { groupBy } = req.query;
      const w = window(req.query, o.clock());
      return { groupBy, ...w, groups: named(groupBy, await usageReport(o.db, { groupBy, ...w })) };
    },
  );

  app.get(
    "/v1/admin/regions/:regionId/insights",
    {
      onRequest: o.admin,
      preHandler: stamp,
      schema: {
        tags: ["admin"],
        operationId: "regionInsights",
        summary: "How a region's terminals are used by hour of day, and suggested time-of-use periods",
        params: z.object({ regionId: idSchema }),
        querystring: z.object(range),
        response: responses({ 200: insightsResponse }, [404]),
      },
    },
    async (req) => {
      const w = window(req.query, o.clock());
      return regionInsights(o.db, req.params.regionId, w.from, w.to);
    },
  );

  app.get(
    "/v1/me/usage",
    {
      onRequest: o.user,
      preHandler: stamp,
      schema: { tags: ["user"], operationId: "myUsage", summary: "The user's totals and hourly curve", querystring: z.object(range), response: responses({ 200: z.object({ userId: idSchema, ...period, ...usageTotals }) }) },
    },
    async (req) => {
    const userId = me(req);
    const w = window(req.query, o.clock());
    const [mine] = await usageReport(o.db, { groupBy: "user", ...w, userId });
    const { id: _id, ...totals } = mine ?? { id: userId, ...emptyTotals() };
    return { userId, ...w, ...totals };
  },
  );

  app.get(
    "/v1/franchisee/usage",
    {
      onRequest: o.franchisee,
      preHandler: stamp,
      schema: {
        tags: ["franchisee"],
        operationId: "franchiseeUsage",
        summary: "Usage of the franchisee's own terminals per terminal or region",
        querystring: z.object({ groupBy: z.enum(["terminal", "region"]).default("terminal"), ...range }),
        response: responses({ 200: z.object({ franchiseeId: idSchema, groupBy: z.string(), ...period, groups: z.array(z.union([group("terminalId"), group("regionId")])) }) }),
      },
    },
    async (req) => {
      const franchiseeId = me(req);
      const { groupBy } = req.query;
      const w = window(req.query, o.clock());
      return { franchiseeId, groupBy, ...w, groups: named(groupBy, await usageReport(o.db, { groupBy, ...w, franchiseeId })) };
    },
  );

  app.get(
    "/v1/franchisee/package",
    {
      onRequest: o.franchisee,
      preHandler: stamp,
      schema: {
        tags: ["franchisee"],
        operationId: "franchiseePackage",
        summary: "The franchisee's data package for a period (usage, busy share, faults), JSON or CSV",
        querystring: z.object({ format: z.enum(["json", "csv"]).default("json"), ...range }),
        response: responses({ 200: { description: "the package", content: { "application/json": { schema: packageResponse }, "text/csv": { schema: z.string() } } } }),
      },
    },
    async (req, reply) => {
      const franchiseeId = me(req);
      const w = window(req.query, o.clock());
      const pkg = await buildPackage(o.db, franchiseeId, w.from, w.to, o.clock());
      if (req.query.format === "json") return reply.type("application/json; charset=utf-8").send(pkg);
      return reply
        .type("text/csv; charset=utf-8")
        .header("content-disposition", `attachment; filename="voltvend-${franchiseeId}-${new Date(w.from).toISOString().slice(0, 10)}.csv"`)
        .send(packageCsv(pkg));
    },
  );
}
