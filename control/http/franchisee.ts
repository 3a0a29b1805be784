import type { NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import { textSchema, type Subjects } from "../../contracts/index.ts";
import type { Buckets } from "../../ingest/index.ts";
import { isOnline, readLive } from "../../processors/index.ts";
import type { Db } from "../db.ts";
import type { FaultService } from "../faults/service.ts";
import { faultsOf, franchiseeView, toEvent, unresolvedOfTerminals } from "../faults/store.ts";
import type { Metrics } from "../metrics.ts";
import { terminalsOfFranchisee } from "../registry-views.ts";
import type { App } from "./server.ts";
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
  o: { db: Db; nc: NatsConnection; subjects: Subjects; buckets: Buckets; metrics: Metrics; faults: FaultService; clock: () => number; offlineMs: number; streams: StreamCounter; onRequest: (req: any, reply: any) => Promise<void> },
) {
  const tags = ["franchisee"];
  const me = (req: { principal?: { sub: string } }) => req.principal!.sub;

  app.get("/v1/franchisee/terminals", { onRequest: o.onRequest, schema: { tags } }, async (req) => {
    const fr = me(req);
    const r = { rows: await terminalsOfFranchisee(o.db, fr) };
    const ids = r.rows.map((t) => t.terminal_id);
    const faults = await unresolvedOfTerminals(o.db, ids);
    const now = o.clock();
    const terminals = await Promise.all(
      r.rows.map(async (t) => {
        const live = await readLive(o.buckets.live, t.terminal_id, o);
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
  });

  app.get(
    "/v1/franchisee/faults",
    { onRequest: o.onRequest, schema: { tags, querystring: z.object({ status: statusList.optional(), limit: z.coerce.number().int().positive().max(1000).default(200) }) } },
    async (req) => {
      const rows = await faultsOf(o.db, me(req), req.query.status ?? null, req.query.limit);
      return { faults: rows.map(toEvent) };
    },
  );

  app.post("/v1/franchisee/faults/:faultId/ack", { onRequest: o.onRequest, schema: { tags, params: z.object({ faultId: textSchema(1, 64) }) } }, async (req, reply) =>
    reply.status(202).send(await o.faults.acknowledge(me(req), req.params.faultId)),
  );

  app.get("/v1/franchisee/faults/stream", { onRequest: o.onRequest, schema: { tags, hide: false } }, async (req, reply) => {
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
  });
}
