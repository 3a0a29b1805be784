import type { NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import { textSchema, type Subjects } from "../../contracts/index.ts";
import { isOnline, type LiveReader } from "../live.ts";
import type { Db } from "../db.ts";
import type { FaultService } from "../faults/service.ts";
import { faultsOf, franchiseeView, toEvent, unresolvedOfTerminals } from "../faults/store.ts";
import type { Metrics } from "../metrics.ts";
import { terminalsOfFranchisee } from "../registry-views.ts";
import type { App, Hook } from "./server.ts";
import { buildStatement, statementCsv } from "../reports/statement.ts";
import { content, faultResponse, responses, statementResponse } from "./schemas.ts";
import { faultEvents } from "./sse.ts";
import type { StreamCounter } from "./streams.ts";

const statusList = z
  .string()
  .transform((v) => v.split(",").filter(Boolean))
  .pipe(z.array(z.enum(["open", "acknowledged", "resolved"])).min(1));

/**
 * The franchisee's calls. Every query is scoped by the token's franchisee; nothing of another
 * franchisee's is reachable through any of them.
 */
export function franchiseeRoutes(
  app: App,
  o: { db: Db; nc: NatsConnection; subjects: Subjects; live: LiveReader; metrics: Metrics; faults: FaultService; clock: () => number; offlineMs: number; streams: StreamCounter; statementTz: string; onRequest: Hook },
) {
  const tags = ["franchisee"];
  const me = (req: { principal?: { sub: string } }) => req.principal!.sub;

  const terminalsResponse = z.object({
    franchiseeId: z.string(),
    terminals: z.array(
      z.object({
        terminalId: z.string(),
        qr: z.string(),
        regionId: z.string(),
        gatewayId: z.string(),
        live: z
          .object({
            relay: z.enum(["on", "off"]),
            currentA: z.number(),
            voltageV: z.number(),
            energyWh: z.number(),
            lastReadingAt: z.number(),
            seenAt: z.number(),
            online: z.boolean(),
          })
          .nullable(),
        openFaults: z.array(faultResponse),
      }).loose(),
    ),
  });
  app.get(
    "/v1/franchisee/terminals",
    { onRequest: o.onRequest, schema: { tags, operationId: "listFranchiseeTerminals", summary: "The franchisee's terminals with their live state and open faults", response: responses({ 200: terminalsResponse }) } },
    async (req) => {
    const fr = me(req);
    const r = { rows: await terminalsOfFranchisee(o.db, fr) };
    const ids = r.rows.map((t) => t.terminal_id);
    const faults = await unresolvedOfTerminals(o.db, ids);
    const now = o.clock();
    const terminals = await Promise.all(
      r.rows.map(async (t) => {
        const live = await o.live.read(t.terminal_id, t.gateway_id, now);
        return {
          terminalId: t.terminal_id,
          qr: t.qr,
          regionId: t.region_id,
          gatewayId: t.gateway_id,
          // Extension (1.1): in service, out of service for maintenance (why, until when), or retired.
          status: t.status,
          maintenance: t.maintenance,
          live: live && {
            relay: live.state,
            currentA: live.currentA,
            voltageV: live.voltageV,
            energyWh: live.energyWh,
            lastReadingAt: live.ts,
            seenAt: live.seenAt,
            online: isOnline(live, now, o.offlineMs),
          },
          openFaults: faults.filter((f) => f.terminalId === t.terminal_id).map(toEvent),
        };
      }),
    );
    return { franchiseeId: fr, terminals };
  },
  );

  app.get(
    "/v1/franchisee/faults",
    {
      onRequest: o.onRequest,
      schema: {
        tags,
        operationId: "listFranchiseeFaults",
        summary: "The franchisee's faults, newest first",
        querystring: z.object({ status: statusList.optional(), limit: z.coerce.number().int().positive().max(1000).default(200) }),
        response: responses({ 200: z.object({ faults: z.array(faultResponse) }) }),
      },
    },
    async (req) => {
      const rows = await faultsOf(o.db, me(req), req.query.status ?? null, req.query.limit);
      return { faults: rows.map(toEvent) };
    },
  );

  app.post(
    "/v1/franchisee/faults/:faultId/ack",
    {
      onRequest: o.onRequest,
      schema: { tags, operationId: "acknowledgeFault", summary: "Acknowledge an open fault", params: z.object({ faultId: textSchema(1, 64) }), response: responses({ 202: faultResponse }, [404, 409]) },
    },
    async (req, reply) => reply.status(202).send(await o.faults.acknowledge(me(req), req.params.faultId)),
  );

  app.post(
    "/v1/franchisee/faults/:faultId/close",
    {
      onRequest: o.onRequest,
      schema: {
        tags,
        operationId: "closeFault",
        summary: "Close an unresolved fault by hand with a note (a scan-failure report that was a user's mistake); audited",
        params: z.object({ faultId: textSchema(1, 64) }),
        body: z.object({ note: textSchema(1, 500) }),
        response: responses({ 200: faultResponse }, [404, 409]),
      },
    },
    async (req) => o.faults.closeByHand(me(req), req.params.faultId, req.body.note),
  );

  app.get(
    "/v1/franchisee/statements/:month",
    {
      onRequest: o.onRequest,
      schema: {
        tags,
        operationId: "getSettlementStatement",
        summary: "The monthly settlement statement (YYYY-MM): sessions, energy and fees per terminal, refunds; JSON or CSV",
        params: z.object({ month: z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, "must be YYYY-MM") }),
        querystring: z.object({ format: z.enum(["json", "csv"]).default("json") }),
        response: responses({ 200: { description: "the statement", content: { "application/json": { schema: statementResponse }, "text/csv": { schema: z.string() } } } }),
      },
    },
    async (req, reply) => {
      const st = await buildStatement(o.db, me(req), req.params.month, o.statementTz, o.clock());
      if (req.query.format === "json") return reply.type("application/json; charset=utf-8").send(st);
      return reply
        .type("text/csv; charset=utf-8")
        .header("content-disposition", `attachment; filename="voltvend-statement-${st.franchiseeId}-${st.month}.csv"`)
        .send(statementCsv(st));
    },
  );

  app.get(
    "/v1/franchisee/faults/stream",
    {
      onRequest: o.onRequest,
      schema: { tags, operationId: "followFaults", summary: "Server-sent events: the franchisee's faults as they open and resolve", response: responses({ 200: content("text/event-stream", "a stream of fault events") }) },
    },
    async (req, reply) => {
    const fr = me(req);
    const last = Number(req.headers["last-event-id"]);
    await faultEvents(req, reply, {
      nc: o.nc,
      subjects: o.subjects,
      metrics: o.metrics,
      streams: o.streams,
      franchiseeId: fr,
      lastEventId: Number.isSafeInteger(last) && last > 0 ? last : null,
      snapshot: async () => (await faultsOf(o.db, fr, ["open", "acknowledged"], 1000)).map(toEvent),
      toEvent: franchiseeView,
    });
  },
  );
}
