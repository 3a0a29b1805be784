import type { NatsConnection } from "@nats-io/nats-core";
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import {
  adminFaultSchema,
  adminSessionSchema,
  adminUserSchema,
  auditEntrySchema,
  auditQuerySchema,
  errorBodySchema,
  faultsQuerySchema,
  franchiseeBodySchema,
  franchiseeSchema,
  gatewayBodySchema,
  gatewaySchema,
  idSchema,
  maintenanceBodySchema,
  pageOf,
  pageQuerySchema,
  regionBodySchema,
  regionSchema,
  registryQuerySchema,
  retireBodySchema,
  sessionsQuerySchema,
  tariffBodySchema,
  tariffPeriodSchema,
  tariffVersionSchema,
  terminalBodySchema,
  terminalWithLiveSchema,
  textSchema,
  topupBodySchema,
  tsSchema,
  userBodySchema,
  type Subjects,
} from "../../contracts/index.ts";
import { readingsOf, type Buckets } from "../../ingest/index.ts";
import { audit, listAudit } from "../audit.ts";
import { inTx, type Db, type Tx } from "../db.ts";
import { notFound } from "../errors.ts";
import { faultById, toAdminEvent } from "../faults/store.ts";
import { listFaults, listSessions } from "../network.ts";
import { upsertFranchisee, upsertGateway, upsertRegion, upsertTerminal } from "../registry.ts";
import {
  endMaintenance,
  franchiseeExists,
  franchiseeView,
  gatewayView,
  listFranchisees,
  listGateways,
  listRegions,
  listTariffs,
  listTerminals,
  listUsers,
  regionView,
  retire,
  startMaintenance,
  tariffVersionView,
  terminalView,
  userView,
  type RetirableKind,
  type TerminalView,
} from "../registry-views.ts";
import { addTariffVersion } from "../tariffs.ts";
import { terminalLiveState } from "../terminal-state.ts";
import { setWebhook } from "../webhooks.ts";
import { topUp, upsertUser } from "../wallet.ts";
import type { App, Hook } from "./server.ts";
import type { LiveReader } from "../live.ts";

const p = (name: string) => z.object({ [name]: idSchema });

/**
 * The responses of an admin route: its successes, and the protocol's error shape for every error
 * it may answer (400 for any bad input, 401/403 for the token, 429 and 503 for any call).
 */
function responses(ok: Record<number, z.ZodType>, ...errors: number[]): Record<number, z.ZodType> {
  const out: Record<number, z.ZodType> = { ...ok };
  for (const e of [400, 401, 403, 429, 503, ...errors]) out[e] ??= errorBodySchema;
  return out;
}

export interface AdminDeps {
  db: Db;
  nc: NatsConnection;
  subjects: Subjects;
  buckets: Buckets;
  clock: () => number;
  offlineMs: number;
  onRequest: Hook;
  /** Terminals' last readings, from the telemetry stream (control/live.ts). */
  live: LiveReader;
  /** A terminal's registry entry changed: the processors' directory (`<p>_terminals`) follows. */
  onTerminal: (terminalId: string) => Promise<void>;
}

/**
 * The admin calls: the registry (register, read, list, retire, maintenance), tariffs, wallets,
 * the network's sessions and faults, and the audit log. Every change is audited in its own
 * transaction (control/audit.ts): who, when, what, before and after.
 */
export function adminRoutes(app: App, o: AdminDeps) {
  const { db } = o;
  const base = { onRequest: o.onRequest };
  const tags = ["admin"];

  /** Runs a change and its audit entry in one transaction. */
  const change = <T>(
    req: FastifyRequest,
    what: { action: string; objectType: string; objectId: string; reason?: string | undefined },
    before: (tx: Tx) => Promise<unknown>,
    run: (tx: Tx) => Promise<T>,
    after: (tx: Tx, result: T) => Promise<unknown> = async (_tx, r) => r,
  ): Promise<T> =>
    inTx(db, async (tx) => {
      const b = await before(tx);
      const result = await run(tx);
      const a = await after(tx, result);
      await audit(tx, { actor: req.principal!, ...what, before: b, after: a, atMs: o.clock() });
      return result;
    });

  const withLive = async (t: TerminalView) => ({ ...t, ...(await terminalLiveState(o, t, o.clock())) });

  // ---- regions -------------------------------------------------------------------------------
  app.put(
    "/v1/admin/regions/:regionId",
    { ...base, schema: { tags, operationId: "adminPutRegion", summary: "Register or change a region", params: p("regionId"), body: regionBodySchema, response: responses({ 200: regionSchema }, 409) } },
    async (req) => {
      const { regionId } = req.params as { regionId: string };
      const view = () => regionView(db, regionId);
      return (await change(req, { action: "region.put", objectType: "region", objectId: regionId }, view, async (tx) => {
        await upsertRegion(tx, regionId, req.body);
        return regionView(tx, regionId);
      }))!;
    },
  );
  app.get(
    "/v1/admin/regions",
    { ...base, schema: { tags, operationId: "adminListRegions", summary: "List regions (paginated; state=active,retired)", querystring: registryQuerySchema, response: responses({ 200: pageOf(regionSchema) }) } },
    async (req) => listRegions(db, req.query),
  );
  app.get(
    "/v1/admin/regions/:regionId",
    { ...base, schema: { tags, operationId: "adminGetRegion", summary: "Read a region", params: p("regionId"), response: responses({ 200: regionSchema }, 404) } },
    async (req) => {
      const { regionId } = req.params as { regionId: string };
      return (await regionView(db, regionId)) ?? notFoundOf("region", regionId);
    },
  );

  // ---- franchisees ---------------------------------------------------------------------------
  app.put(
    "/v1/admin/franchisees/:franchiseeId",
    { ...base, schema: { tags, operationId: "adminPutFranchisee", summary: "Register or change a franchisee", params: p("franchiseeId"), body: franchiseeBodySchema, response: responses({ 200: franchiseeSchema }) } },
    async (req) => {
      const { franchiseeId } = req.params as { franchiseeId: string };
      return (await change(req, { action: "franchisee.put", objectType: "franchisee", objectId: franchiseeId }, (tx) => franchiseeView(tx, franchiseeId), async (tx) => {
        await upsertFranchisee(tx, franchiseeId, req.body);
        return franchiseeView(tx, franchiseeId);
      }))!;
    },
  );
  app.get(
    "/v1/admin/franchisees",
    { ...base, schema: { tags, operationId: "adminListFranchisees", summary: "List franchisees (paginated; regionId: with a terminal there; state)", querystring: registryQuerySchema, response: responses({ 200: pageOf(franchiseeSchema) }) } },
    async (req) => listFranchisees(db, req.query),
  );
  app.get(
    "/v1/admin/franchisees/:franchiseeId",
    { ...base, schema: { tags, operationId: "adminGetFranchisee", summary: "Read a franchisee", params: p("franchiseeId"), response: responses({ 200: franchiseeSchema }, 404) } },
    async (req) => {
      const { franchiseeId } = req.params as { franchiseeId: string };
      return (await franchiseeView(db, franchiseeId)) ?? notFoundOf("franchisee", franchiseeId);
    },
  );
  app.put(
    "/v1/admin/franchisees/:franchiseeId/webhook",
    {
      ...base,
      schema: {
        tags,
        operationId: "adminPutWebhook",
        summary: "Set a franchisee's webhook",
        params: p("franchiseeId"),
        body: z.object({ url: z.url({ protocol: /^https?$/ }), secret: textSchema(16, 200) }),
        response: responses({ 200: z.object({ franchiseeId: idSchema, url: z.string() }) }, 404),
      },
    },
    async (req) => {
      const { franchiseeId } = req.params as { franchiseeId: string };
      if (!(await franchiseeExists(db, franchiseeId))) throw notFound("franchisee", franchiseeId);
      // The secret is never written to the audit log: only that it changed.
      await change(req, { action: "franchisee.webhook", objectType: "franchisee", objectId: franchiseeId }, async () => null, (tx) => setWebhook(tx, franchiseeId, req.body.url, req.body.secret), async () => ({ url: req.body.url, secret: "(set)" }));
      return { franchiseeId, url: req.body.url };
    },
  );

  // ---- gateways ------------------------------------------------------------------------------
  app.put(
    "/v1/admin/gateways/:gatewayId",
    { ...base, schema: { tags, operationId: "adminPutGateway", summary: "Register or change a gateway", params: p("gatewayId"), body: gatewayBodySchema, response: responses({ 200: gatewaySchema }, 404, 409) } },
    async (req) => {
      const { gatewayId } = req.params as { gatewayId: string };
      return (await change(req, { action: "gateway.put", objectType: "gateway", objectId: gatewayId }, (tx) => gatewayView(tx, gatewayId), async (tx) => {
        await upsertGateway(tx, gatewayId, req.body);
        return gatewayView(tx, gatewayId);
      }))!;
    },
  );
  app.get(
    "/v1/admin/gateways",
    { ...base, schema: { tags, operationId: "adminListGateways", summary: "List gateways (paginated; regionId, franchiseeId, state)", querystring: registryQuerySchema, response: responses({ 200: pageOf(gatewaySchema) }) } },
    async (req) => listGateways(db, req.query),
  );
  app.get(
    "/v1/admin/gateways/:gatewayId",
    { ...base, schema: { tags, operationId: "adminGetGateway", summary: "Read a gateway", params: p("gatewayId"), response: responses({ 200: gatewaySchema }, 404) } },
    async (req) => {
      const { gatewayId } = req.params as { gatewayId: string };
      return (await gatewayView(db, gatewayId)) ?? notFoundOf("gateway", gatewayId);
    },
  );

  // ---- terminals -----------------------------------------------------------------------------
  app.put(
    "/v1/admin/terminals/:terminalId",
    { ...base, schema: { tags, operationId: "adminPutTerminal", summary: "Register or change a terminal (with its location)", params: p("terminalId"), body: terminalBodySchema, response: responses({ 200: terminalWithLiveSchema }, 404, 409) } },
    async (req) => {
      const { terminalId } = req.params as { terminalId: string };
      const t = (await change(req, { action: "terminal.put", objectType: "terminal", objectId: terminalId }, (tx) => terminalView(tx, terminalId), async (tx) => {
        await upsertTerminal(tx, terminalId, req.body);
        return terminalView(tx, terminalId);
      }))!;
      await o.onTerminal(terminalId);
      return withLive(t);
    },
  );
  app.get(
    "/v1/admin/terminals",
    {
      ...base,
      schema: { tags, operationId: "adminListTerminals", summary: "List terminals with their state now (paginated; regionId, franchiseeId, gatewayId, state=active,maintenance,retired)", querystring: registryQuerySchema, response: responses({ 200: pageOf(terminalWithLiveSchema) }) },
    },
    async (req) => {
      const page = await listTerminals(db, req.query);
      return { items: await Promise.all(page.items.map(withLive)), next: page.next };
    },
  );
  app.get(
    "/v1/admin/terminals/:terminalId",
    { ...base, schema: { tags, operationId: "adminGetTerminal", summary: "Read a terminal with its state now", params: p("terminalId"), response: responses({ 200: terminalWithLiveSchema }, 404) } },
    async (req) => {
      const { terminalId } = req.params as { terminalId: string };
      const t = await terminalView(db, terminalId);
      if (!t) throw notFound("terminal", terminalId);
      return withLive(t);
    },
  );
  app.put(
    "/v1/admin/terminals/:terminalId/maintenance",
    {
      ...base,
      schema: { tags, operationId: "adminStartMaintenance", summary: "Take a terminal out of service (reason, expected return)", params: p("terminalId"), body: maintenanceBodySchema, response: responses({ 200: terminalWithLiveSchema }, 404, 409) },
    },
    async (req) => {
      const { terminalId } = req.params as { terminalId: string };
      const t = (await change(req, { action: "terminal.maintenance_start", objectType: "terminal", objectId: terminalId, reason: req.body.reason }, (tx) => terminalView(tx, terminalId), async (tx) => {
        await startMaintenance(tx, terminalId, req.body, o.clock());
        return terminalView(tx, terminalId);
      }))!;
      await o.onTerminal(terminalId);
      return withLive(t);
    },
  );
  app.delete(
    "/v1/admin/terminals/:terminalId/maintenance",
    { ...base, schema: { tags, operationId: "adminEndMaintenance", summary: "Put a terminal back in service", params: p("terminalId"), response: responses({ 200: terminalWithLiveSchema }, 404) } },
    async (req) => {
      const { terminalId } = req.params as { terminalId: string };
      const t = (await change(req, { action: "terminal.maintenance_end", objectType: "terminal", objectId: terminalId }, (tx) => terminalView(tx, terminalId), async (tx) => {
        await endMaintenance(tx, terminalId);
        return terminalView(tx, terminalId);
      }))!;
      await o.onTerminal(terminalId);
      return withLive(t);
    },
  );

  const readingsQuery = z.object({
    from: z.coerce.number().int().nonnegative().default(0),
    to: z.coerce.number().int().positive().default(8_640_000_000_000_000),
    limit: z.coerce.number().int().positive().max(10_000).default(1000),
  });
  const readingSchema = z.object({
    ts: tsSchema,
    seq: z.number(),
    state: z.enum(["on", "off"]),
    currentA: z.number(),
    voltageV: z.number(),
    powerW: z.number(),
    energyWh: z.number(),
    sessionId: z.string().nullable(),
    gatewayId: z.string(),
  });
  app.get(
    "/v1/admin/terminals/:terminalId/readings",
    {
      ...base,
      schema: {
        tags,
        operationId: "adminTerminalReadings",
        summary: "A terminal's stored readings, oldest first",
        params: p("terminalId"),
        querystring: readingsQuery,
        response: responses({ 200: z.object({ terminalId: idSchema, readings: z.array(readingSchema), nextFrom: tsSchema.nullable() }) }, 404),
      },
    },
    async (req) => {
      const { terminalId } = req.params as { terminalId: string };
      if (!(await terminalView(db, terminalId))) throw notFound("terminal", terminalId);
      const { from, to, limit } = req.query;
      const readings = await readingsOf(db, terminalId, from, to, limit);
      // A full page says where the next one starts.
      const nextFrom = readings.length === limit ? readings.at(-1)!.ts + 1 : null;
      return { terminalId, readings, nextFrom };
    },
  );

  // ---- tariffs -------------------------------------------------------------------------------
  app.put(
    "/v1/admin/regions/:regionId/tariff",
    {
      ...base,
      schema: {
        tags,
        operationId: "adminPutTariff",
        summary: "Add a tariff version to a region",
        params: p("regionId"),
        body: tariffBodySchema,
        response: responses({ 201: z.object({ regionId: idSchema, version: z.number().int(), effectiveFrom: tsSchema, periods: z.array(tariffPeriodSchema) }) }, 404),
      },
    },
    async (req, reply) => {
      const { regionId } = req.params as { regionId: string };
      const v = await change(req, { action: "tariff.add", objectType: "region", objectId: regionId }, async () => null, (tx) =>
        addTariffVersion(tx, regionId, req.body.effectiveFrom ?? o.clock(), req.body.periods),
        async (_tx, v) => ({ version: v.version, effectiveFrom: v.effectiveFrom, periods: v.periods }),
      );
      return reply.status(201).send({ regionId, version: v.version, effectiveFrom: v.effectiveFrom, periods: v.periods });
    },
  );
  app.get(
    "/v1/admin/tariffs",
    { ...base, schema: { tags, operationId: "adminListTariffs", summary: "List tariff versions (paginated; regionId)", querystring: pageQuerySchema.extend({ regionId: idSchema.optional() }), response: responses({ 200: pageOf(tariffVersionSchema) }) } },
    async (req) => listTariffs(db, req.query),
  );
  app.get(
    "/v1/admin/regions/:regionId/tariffs/:version",
    {
      ...base,
      schema: { tags, operationId: "adminGetTariff", summary: "Read one tariff version", params: z.object({ regionId: idSchema, version: z.coerce.number().int().positive().max(2 ** 31 - 1) }), response: responses({ 200: tariffVersionSchema }, 404) },
    },
    async (req) => {
      const { regionId, version } = req.params as { regionId: string; version: number };
      return (await tariffVersionView(db, regionId, version)) ?? notFoundOf("tariff", `${regionId} v${version}`);
    },
  );

  // ---- users ---------------------------------------------------------------------------------
  app.put(
    "/v1/admin/users/:userId",
    { ...base, schema: { tags, operationId: "adminPutUser", summary: "Create a user or set its postpaid credit limit", params: p("userId"), body: userBodySchema, response: responses({ 200: adminUserSchema }) } },
    async (req) => {
      const { userId } = req.params as { userId: string };
      return (await change(req, { action: "user.put", objectType: "user", objectId: userId }, (tx) => userView(tx, userId), async (tx) => {
        await upsertUser(tx, userId, req.body.creditLimitCents);
        return userView(tx, userId);
      }))!;
    },
  );
  app.get(
    "/v1/admin/users",
    {
      ...base,
      schema: {
        tags,
        operationId: "adminListUsers",
        summary: "List users with balance and debt (paginated; state, inDebt)",
        querystring: pageQuerySchema.extend({ state: registryQuerySchema.shape.state, inDebt: z.enum(["true", "false"]).optional() }),
        response: responses({ 200: pageOf(adminUserSchema) }),
      },
    },
    async (req) => listUsers(db, { ...req.query, inDebt: req.query.inDebt === "true" }),
  );
  app.get(
    "/v1/admin/users/:userId",
    { ...base, schema: { tags, operationId: "adminGetUser", summary: "Read a user's wallet", params: p("userId"), response: responses({ 200: adminUserSchema }, 404) } },
    async (req) => {
      const { userId } = req.params as { userId: string };
      return (await userView(db, userId)) ?? notFoundOf("user", userId);
    },
  );
  const topupAnswer = adminUserSchema.pick({ userId: true, balanceCents: true, heldCents: true, creditLimitCents: true, debtCents: true }).extend({ credited: z.boolean() });
  app.post(
    "/v1/admin/users/:userId/topups",
    {
      ...base,
      schema: {
        tags,
        operationId: "adminTopUp",
        summary: "Credit a user's wallet (idempotent by reference)",
        params: p("userId"),
        body: topupBodySchema,
        response: responses({ 200: topupAnswer, 201: topupAnswer }, 409),
      },
    },
    async (req, reply) => {
      const { userId } = req.params as { userId: string };
      // A person moving money: audited, once (a repeated reference credits nothing and adds no entry).
      const r = await inTx(db, async (tx) => {
        const before = await userView(tx, userId);
        const r = await topUp(tx, userId, req.body.amountCents, req.body.reference);
        if (r.credited)
          await audit(tx, { actor: req.principal!, action: "wallet.topup", objectType: "user", objectId: userId, before, after: { ...(await userView(tx, userId)), amountCents: req.body.amountCents, reference: req.body.reference }, atMs: o.clock() });
        return r;
        // Idempotent by its reference: done again after a COMMIT lost in a failover, it credits
        // nothing twice and audits nothing twice.
      }, { idempotent: true });
      // 201 the first time a reference is seen, 200 for a repeat (credited once).
      return reply.status(r.credited ? 201 : 200).send({ credited: r.credited, ...r.wallet });
    },
  );

  // ---- retiring ------------------------------------------------------------------------------
  const retirable: [RetirableKind, string, z.ZodType, (id: string) => Promise<unknown>][] = [
    ["region", "regions", regionSchema, (id) => regionView(db, id)],
    ["franchisee", "franchisees", franchiseeSchema, (id) => franchiseeView(db, id)],
    ["gateway", "gateways", gatewaySchema, (id) => gatewayView(db, id)],
    ["terminal", "terminals", terminalWithLiveSchema, async (id) => withLive((await terminalView(db, id))!)],
    ["user", "users", adminUserSchema, (id) => userView(db, id)],
  ];
  const views: Record<RetirableKind, (q: Db | Tx, id: string) => Promise<unknown>> = {
    region: regionView,
    franchisee: franchiseeView,
    gateway: gatewayView,
    terminal: terminalView,
    user: userView,
  };
  for (const [kind, collection, schema, read] of retirable) {
    const key = `${kind}Id`;
    app.post(
      `/v1/admin/${collection}/:${key}/retire`,
      {
        ...base,
        schema: {
          tags,
          operationId: `adminRetire${kind[0]!.toUpperCase()}${kind.slice(1)}`,
          summary: `Retire a ${kind} (never deleted; its history stays)`,
          params: p(key),
          body: retireBodySchema,
          response: responses({ 200: schema }, 404, 409),
        },
      },
      async (req) => {
        const id = (req.params as Record<string, string>)[key]!;
        await change(req, { action: `${kind}.retire`, objectType: kind, objectId: id, reason: req.body.reason }, (tx) => views[kind](tx, id), (tx) => retire(tx, kind, id, o.clock()), (tx) => views[kind](tx, id));
        if (kind === "terminal") await o.onTerminal(id);
        return read(id);
      },
    );
  }

  // ---- the network ---------------------------------------------------------------------------
  app.get(
    "/v1/admin/sessions",
    { ...base, schema: { tags, operationId: "adminListSessions", summary: "Sessions across the network, newest first (time, region, franchisee, terminal, user, state, stop reason)", querystring: sessionsQuerySchema, response: responses({ 200: pageOf(adminSessionSchema) }) } },
    async (req) => listSessions(db, req.query),
  );
  app.get(
    "/v1/admin/faults",
    { ...base, schema: { tags, operationId: "adminListFaults", summary: "Faults across the network, newest first (time, region, franchisee, terminal, reporting user, state, kind)", querystring: faultsQuerySchema, response: responses({ 200: pageOf(adminFaultSchema) }) } },
    async (req) => listFaults(db, req.query),
  );
  /** The whole fault, with what only admins see (who reported a scan failure). */
  app.get(
    "/v1/admin/faults/:faultId",
    { ...base, schema: { tags, operationId: "adminGetFault", summary: "Read a fault, reporter included", params: z.object({ faultId: textSchema(1, 64) }), response: responses({ 200: adminFaultSchema }, 404) } },
    async (req) => {
      const f = await faultById(db, req.params.faultId);
      if (!f) throw notFound("fault", req.params.faultId);
      return toAdminEvent(f);
    },
  );
  app.get(
    "/v1/admin/audit",
    { ...base, schema: { tags, operationId: "adminListAudit", summary: "The audit log, newest first (objectType, objectId, actor, action, time)", querystring: auditQuerySchema, response: responses({ 200: pageOf(auditEntrySchema) }) } },
    async (req) => listAudit(db, req.query),
  );
}

function notFoundOf(what: string, id: string): never {
  throw notFound(what, id);
}
