import { z } from "zod";
import {
  franchiseeBodySchema,
  gatewayBodySchema,
  idSchema,
  regionBodySchema,
  textSchema,
  tariffBodySchema,
  terminalBodySchema,
  topupBodySchema,
  userBodySchema,
} from "../../contracts/index.ts";
import { readingsOf } from "../../ingest/index.ts";
import { inTx, type Db } from "../db.ts";
import { notFound } from "../errors.ts";
import { terminalById } from "../registry.ts";
import { setWebhook } from "../webhooks.ts";
import { faultById, toAdminEvent } from "../faults/store.ts";
import { upsertFranchisee, upsertGateway, upsertRegion, upsertTerminal } from "../registry.ts";
import { addTariffVersion } from "../tariffs.ts";
import { topUp, upsertUser } from "../wallet.ts";
import type { App, Hook } from "./server.ts";
import { faultResponse, meResponse, responses } from "./schemas.ts";
import { tariffPeriodSchema } from "../../contracts/index.ts";

// Answers echo what was stored; `.loose()`: fields the registry gains later are answered as they are.
const regionResponse = z.object({ regionId: idSchema, name: z.string(), timezone: z.string() }).loose();
const franchiseeResponse = z.object({ franchiseeId: idSchema, name: z.string() }).loose();
const gatewayResponse = z.object({ gatewayId: idSchema, regionId: idSchema }).loose();
const terminalResponse = z.object({ terminalId: idSchema, qr: z.string(), gatewayId: idSchema, regionId: idSchema, franchiseeId: idSchema, profile: z.record(z.string(), z.unknown()) }).loose();
const tariffResponse = z.object({ regionId: idSchema, version: z.number().int(), effectiveFrom: z.number(), periods: z.array(tariffPeriodSchema) });
const topupResponse = meResponse.extend({ credited: z.boolean() });
const readingResponse = z.object({
  ts: z.number(),
  seq: z.number(),
  state: z.enum(["on", "off"]),
  currentA: z.number(),
  voltageV: z.number(),
  powerW: z.number(),
  energyWh: z.number(),
  sessionId: z.string().nullable(),
  gatewayId: z.string(),
});

const p = (name: string) => ({ params: z.object({ [name]: idSchema }) });

/** The admin calls of the protocol that manage the registry, tariffs and wallets. */
export function adminRoutes(app: App, o: { db: Db; clock: () => number; onRequest: Hook; onTerminal: (terminalId: string) => Promise<void> }) {
  const { db } = o;
  const base = { onRequest: o.onRequest };
  const tags = ["admin"];

  app.put("/v1/admin/regions/:regionId", { ...base, schema: { tags, operationId: "putRegion", summary: "Create or update a region", ...p("regionId"), body: regionBodySchema, response: responses({ 200: regionResponse }) } }, async (req) => {
    const { regionId } = req.params as { regionId: string };
    await upsertRegion(db, regionId, req.body);
    return { regionId, ...req.body };
  });

  app.put("/v1/admin/franchisees/:franchiseeId", { ...base, schema: { tags, operationId: "putFranchisee", summary: "Create or update a franchisee", ...p("franchiseeId"), body: franchiseeBodySchema, response: responses({ 200: franchiseeResponse }) } }, async (req) => {
    const { franchiseeId } = req.params as { franchiseeId: string };
    await upsertFranchisee(db, franchiseeId, req.body);
    return { franchiseeId, ...req.body };
  });

  app.put(
    "/v1/admin/franchisees/:franchiseeId/webhook",
    {
      ...base,
      schema: {
        tags,
        operationId: "putFranchiseeWebhook",
        summary: "Set the webhook a franchisee's fault events are also posted to",
        ...p("franchiseeId"),
        body: z.object({ url: z.url({ protocol: /^https?$/ }), secret: textSchema(16, 200) }),
        response: responses({ 200: z.object({ franchiseeId: idSchema, url: z.string() }) }, [404]),
      },
    },
    async (req) => {
      const { franchiseeId } = req.params as { franchiseeId: string };
      const exists = await db.query("SELECT 1 FROM franchisees WHERE franchisee_id = $1::text", [franchiseeId]);
      if (!exists.rowCount) throw notFound("franchisee", franchiseeId);
      await setWebhook(db, franchiseeId, req.body.url, req.body.secret);
      return { franchiseeId, url: req.body.url };
    },
  );

  app.put("/v1/admin/gateways/:gatewayId", { ...base, schema: { tags, operationId: "putGateway", summary: "Create or update a gateway", ...p("gatewayId"), body: gatewayBodySchema, response: responses({ 200: gatewayResponse }, [404, 409]) } }, async (req) => {
    const { gatewayId } = req.params as { gatewayId: string };
    await upsertGateway(db, gatewayId, req.body);
    return { gatewayId, ...req.body };
  });

  app.put("/v1/admin/terminals/:terminalId", { ...base, schema: { tags, operationId: "putTerminal", summary: "Create or update a terminal", ...p("terminalId"), body: terminalBodySchema, response: responses({ 200: terminalResponse }, [404, 409]) } }, async (req) => {
    const { terminalId } = req.params as { terminalId: string };
    await upsertTerminal(db, terminalId, req.body);
    await o.onTerminal(terminalId);
    return { terminalId, ...req.body };
  });

  app.put("/v1/admin/regions/:regionId/tariff", { ...base, schema: { tags, operationId: "putTariff", summary: "Add a tariff version to a region", ...p("regionId"), body: tariffBodySchema, response: responses({ 201: tariffResponse }, [404]) } }, async (req, reply) => {
    const { regionId } = req.params as { regionId: string };
    const v = await inTx(db, (tx) => addTariffVersion(tx, regionId, req.body.effectiveFrom ?? o.clock(), req.body.periods));
    return reply.status(201).send({ regionId, version: v.version, effectiveFrom: v.effectiveFrom, periods: v.periods });
  });

  app.put("/v1/admin/users/:userId", { ...base, schema: { tags, operationId: "putUser", summary: "Create or update a user (credit limit)", ...p("userId"), body: userBodySchema, response: responses({ 200: meResponse }) } }, async (req) => {
    const { userId } = req.params as { userId: string };
    return upsertUser(db, userId, req.body.creditLimitCents);
  });

  const readingsQuery = z.object({
    from: z.coerce.number().int().nonnegative().default(0),
    to: z.coerce.number().int().positive().default(8_640_000_000_000_000),
    limit: z.coerce.number().int().positive().max(10_000).default(1000),
  });
  app.get("/v1/admin/terminals/:terminalId/readings", {
      ...base,
      schema: {
        tags,
        operationId: "listTerminalReadings",
        summary: "A terminal's stored readings, oldest first",
        ...p("terminalId"),
        querystring: readingsQuery,
        response: responses({ 200: z.object({ terminalId: idSchema, readings: z.array(readingResponse), nextFrom: z.number().nullable() }) }, [404]),
      },
    }, async (req) => {
    const { terminalId } = req.params as { terminalId: string };
    if (!(await terminalById(db, terminalId))) throw notFound("terminal", terminalId);
    const { from, to, limit } = req.query;
    const readings = await readingsOf(db, terminalId, from, to, limit);
    // A full page says where the next one starts.
    const nextFrom = readings.length === limit ? readings.at(-1)!.ts + 1 : null;
    return { terminalId, readings, nextFrom };
  });

  /** The whole fault, with what only admins see (who reported a scan failure). */
  app.get("/v1/admin/faults/:faultId", { ...base, schema: { tags, operationId: "getFault", summary: "A fault, with what only admins see (who reported a scan failure)", params: z.object({ faultId: textSchema(1, 64) }), response: responses({ 200: faultResponse }, [404]) } }, async (req) => {
    const f = await faultById(db, req.params.faultId);
    if (!f) throw notFound("fault", req.params.faultId);
    return toAdminEvent(f);
  });

  app.post("/v1/admin/users/:userId/topups", {
      ...base,
      schema: { tags, operationId: "topUpWallet", summary: "Credit a user's wallet (idempotent by reference)", ...p("userId"), body: topupBodySchema, response: responses({ 201: topupResponse, 200: topupResponse }, [409]) },
    }, async (req, reply) => {
    const { userId } = req.params as { userId: string };
    // Idempotent by its reference: done again after a COMMIT lost in a failover, it credits nothing twice.
    const r = await inTx(db, (tx) => topUp(tx, userId, req.body.amountCents, req.body.reference), { idempotent: true });
    // 201 the first time a reference is seen, 200 for a repeat (credited once).
    return reply.status(r.credited ? 201 : 200).send({ credited: r.credited, ...r.wallet });
  });
}
