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

const p = (name: string) => ({ params: z.object({ [name]: idSchema }) });

/** The admin calls of the protocol that manage the registry, tariffs and wallets. */
export function adminRoutes(app: App, o: { db: Db; clock: () => number; onRequest: Hook; onTerminal: (terminalId: string) => Promise<void> }) {
  const { db } = o;
  const base = { onRequest: o.onRequest };
  const tags = ["admin"];

  app.put("/v1/admin/regions/:regionId", { ...base, schema: { tags, ...p("regionId"), body: regionBodySchema } }, async (req) => {
    const { regionId } = req.params as { regionId: string };
    await upsertRegion(db, regionId, req.body);
    return { regionId, ...req.body };
  });

  app.put("/v1/admin/franchisees/:franchiseeId", { ...base, schema: { tags, ...p("franchiseeId"), body: franchiseeBodySchema } }, async (req) => {
    const { franchiseeId } = req.params as { franchiseeId: string };
    await upsertFranchisee(db, franchiseeId, req.body);
    return { franchiseeId, ...req.body };
  });

  app.put(
    "/v1/admin/franchisees/:franchiseeId/webhook",
    { ...base, schema: { tags, ...p("franchiseeId"), body: z.object({ url: z.url({ protocol: /^https?$/ }), secret: textSchema(16, 200) }) } },
    async (req) => {
      const { franchiseeId } = req.params as { franchiseeId: string };
      const exists = await db.query("SELECT 1 FROM franchisees WHERE franchisee_id = $1::text", [franchiseeId]);
      if (!exists.rowCount) throw notFound("franchisee", franchiseeId);
      await setWebhook(db, franchiseeId, req.body.url, req.body.secret);
      return { franchiseeId, url: req.body.url };
    },
  );

  app.put("/v1/admin/gateways/:gatewayId", { ...base, schema: { tags, ...p("gatewayId"), body: gatewayBodySchema } }, async (req) => {
    const { gatewayId } = req.params as { gatewayId: string };
    await upsertGateway(db, gatewayId, req.body);
    return { gatewayId, ...req.body };
  });

  app.put("/v1/admin/terminals/:terminalId", { ...base, schema: { tags, ...p("terminalId"), body: terminalBodySchema } }, async (req) => {
    const { terminalId } = req.params as { terminalId: string };
    await upsertTerminal(db, terminalId, req.body);
    await o.onTerminal(terminalId);
    return { terminalId, ...req.body };
  });

  app.put("/v1/admin/regions/:regionId/tariff", { ...base, schema: { tags, ...p("regionId"), body: tariffBodySchema } }, async (req, reply) => {
    const { regionId } = req.params as { regionId: string };
    const v = await inTx(db, (tx) => addTariffVersion(tx, regionId, req.body.effectiveFrom ?? o.clock(), req.body.periods));
    return reply.status(201).send({ regionId, version: v.version, effectiveFrom: v.effectiveFrom, periods: v.periods });
  });

  app.put("/v1/admin/users/:userId", { ...base, schema: { tags, ...p("userId"), body: userBodySchema } }, async (req) => {
    const { userId } = req.params as { userId: string };
    return upsertUser(db, userId, req.body.creditLimitCents);
  });

  const readingsQuery = z.object({
    from: z.coerce.number().int().nonnegative().default(0),
    to: z.coerce.number().int().positive().default(8_640_000_000_000_000),
    limit: z.coerce.number().int().positive().max(10_000).default(1000),
  });
  app.get("/v1/admin/terminals/:terminalId/readings", { ...base, schema: { tags, ...p("terminalId"), querystring: readingsQuery } }, async (req) => {
    const { terminalId } = req.params as { terminalId: string };
    if (!(await terminalById(db, terminalId))) throw notFound("terminal", terminalId);
    const { from, to, limit } = req.query;
    const readings = await readingsOf(db, terminalId, from, to, limit);
    // A full page says where the next one starts.
    const nextFrom = readings.length === limit ? readings.at(-1)!.ts + 1 : null;
    return { terminalId, readings, nextFrom };
  });

  /** The whole fault, with what only admins see (who reported a scan failure). */
  app.get("/v1/admin/faults/:faultId", { ...base, schema: { tags, params: z.object({ faultId: textSchema(1, 64) }) } }, async (req) => {
    const f = await faultById(db, req.params.faultId);
    if (!f) throw notFound("fault", req.params.faultId);
    return toAdminEvent(f);
  });

  app.post("/v1/admin/users/:userId/topups", { ...base, schema: { tags, ...p("userId"), body: topupBodySchema } }, async (req, reply) => {
    const { userId } = req.params as { userId: string };
    // Idempotent by its reference: done again after a COMMIT lost in a failover, it credits nothing twice.
    const r = await inTx(db, (tx) => topUp(tx, userId, req.body.amountCents, req.body.reference), { idempotent: true });
    // 201 the first time a reference is seen, 200 for a repeat (credited once).
    return reply.status(r.credited ? 201 : 200).send({ credited: r.credited, ...r.wallet });
  });
}
