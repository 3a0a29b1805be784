import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import type { Subjects } from "../../contracts/index.ts";
import type { Buckets } from "../../ingest/index.ts";
import { isOnline, readLive } from "../../processors/index.ts";
import type { Db } from "../db.ts";
import type { FaultService } from "../faults/service.ts";
import { faultsOf, toEvent, unresolvedOfTerminals } from "../faults/store.ts";
import type { Metrics } from "../metrics.ts";
import type { App } from "./server.ts";

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
  o: { db: Db; nc: NatsConnection; subjects: Subjects; buckets: Buckets; metrics: Metrics; faults: FaultService; clock: () => number; offlineMs: number; onRequest: (req: any) => Promise<void> },
) {
  const tags = ["franchisee"];
  const me = (req: { principal?: { sub: string } }) => req.principal!.sub;

  app.get("/v1/franchisee/terminals", { onRequest: o.onRequest, schema: { tags } }, async (req) => {
    const fr = me(req);
    const r = await o.db.query<{ terminal_id: string; qr: string; region_id: string; gateway_id: string }>(
      "SELECT terminal_id, qr, region_id, gateway_id FROM terminals WHERE franchisee_id = $1::text ORDER BY terminal_id",
      [fr],
    );
    const ids = r.rows.map((t) => t.terminal_id);
    const faults = await unresolvedOfTerminals(o.db, ids);
    const now = o.clock();
    const terminals = await Promise.all(
      r.rows.map(async (t) => {
        const live = await readLive(o.buckets.live, t.terminal_id);
        return {
          terminalId: t.terminal_id,
          qr: t.qr,
          regionId: t.region_id,
          gatewayId: t.gateway_id,
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

  app.post("/v1/franchisee/faults/:faultId/ack", { onRequest: o.onRequest, schema: { tags, params: z.object({ faultId: z.string().min(1).max(64) }) } }, async (req, reply) =>
    reply.status(202).send(await o.faults.acknowledge(me(req), req.params.faultId)),
  );

  /**
   * Server-sent events of the franchisee's faults as they open, repeat, are acknowledged and
   * resolve, read from the faults stream filtered to this franchisee. Each event's id is its
   * stream sequence: a client that reconnects with Last-Event-ID gets everything it missed;
   * a new one first gets its unresolved faults (`snapshot`), then changes.
   */
  app.get("/v1/franchisee/faults/stream", { onRequest: o.onRequest, schema: { tags, hide: false } }, async (req, reply) => {
    const fr = me(req);
    const last = Number(req.headers["last-event-id"]);
    const js = jetstream(o.nc);
    const consumer = await js.consumers.get(o.subjects.streams.faults, {
      filter_subjects: o.subjects.fault(fr, "*"),
      ...(Number.isSafeInteger(last) && last > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: last + 1 } : { deliver_policy: DeliverPolicy.New }),
    });
    const messages = await consumer.consume();
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
    o.metrics.sseClients.inc();
    const keepAlive = setInterval(() => res.write(": keep-alive\n\n"), 15_000);
    const close = () => {
      clearInterval(keepAlive);
      void messages.close();
      o.metrics.sseClients.dec();
    };
    req.raw.on("close", close);
    if (!(last > 0)) {
      const open = await faultsOf(o.db, fr, ["open", "acknowledged"], 1000);
      res.write(`event: snapshot\ndata: ${JSON.stringify(open.map(toEvent))}\n\n`);
    }
    for await (const m of messages) res.write(`id: ${m.seq}\nevent: fault\ndata: ${new TextDecoder().decode(m.data)}\n\n`);
  });
}
