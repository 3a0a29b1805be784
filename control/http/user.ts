import { chargeRequestBodySchema, scanFailureBodySchema, sessionParamsSchema } from "../../contracts/index.ts";
import type { FaultService } from "../faults/service.ts";
import type { Db } from "../db.ts";
import type { Metrics } from "../metrics.ts";
import type { SessionService } from "../sessions/service.ts";
import { ensureUser, wallet } from "../wallet.ts";
import type { App, Hook } from "./server.ts";
import { sessionEvents } from "./sse.ts";
import type { StreamCounter } from "./streams.ts";
import { ApiError } from "../errors.ts";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Subjects } from "../../contracts/index.ts";

/** The user calls of the protocol (admins may also read and stop any session). */
export function userRoutes(
  app: App,
  o: {
    db: Db;
    nc: NatsConnection;
    subjects: Subjects;
    metrics: Metrics;
    sessions: SessionService;
    faults: FaultService;
    streams: StreamCounter;
    /** The shortest duration target (MIN_TARGET_DURATION_S). */
    minDurationS: number;
    publicLimit: (name: string) => Hook;
    user: Hook;
    userOrAdmin: Hook;
  },
) {
  const tags = ["user"];
  const who = (req: { principal?: { sub: string; role: string } }) => req.principal!;

  app.post("/v1/charge-requests", { onRequest: o.user, schema: { tags, body: chargeRequestBodySchema } }, async (req, reply) => {
    const t = req.body.target;
    if ("durationS" in t && t.durationS < o.minDurationS)
      throw new ApiError(400, "invalid_request", "invalid body", [
        { path: "body.target.durationS", message: `must be at least ${o.minDurationS} s (MIN_TARGET_DURATION_S)` },
      ]);
    const session = await o.sessions.requestCharge(who(req).sub, req.body);
    return reply.status(201).send(session);
  });

  app.get("/v1/sessions/:sessionId", { onRequest: o.userOrAdmin, schema: { tags, params: sessionParamsSchema } }, async (req) =>
    o.sessions.get(who(req), req.params.sessionId),
  );

  app.post("/v1/sessions/:sessionId/stop", { onRequest: o.userOrAdmin, schema: { tags, params: sessionParamsSchema } }, async (req, reply) => {
    await o.sessions.stop(who(req), req.params.sessionId);
    return reply.status(202).send({ sessionId: req.params.sessionId, accepted: true });
  });

  app.get("/v1/sessions/:sessionId/events", { onRequest: o.userOrAdmin, schema: { tags, params: sessionParamsSchema } }, async (req, reply) => {
    // The session is read (and refused, 403/404, before the stream starts) once subscribed.
    await sessionEvents(req, reply, {
      nc: o.nc,
      subjects: o.subjects,
      metrics: o.metrics,
      streams: o.streams,
      key: `${who(req).role}:${who(req).sub}`,
      sessionId: req.params.sessionId,
      load: async () => o.sessions.view(await o.sessions.ownSession(who(req), req.params.sessionId)),
    });
  });

  // Counted per client address too: a scan-failure report opens or raises a franchisee's fault.
  app.post("/v1/scan-failures", { onRequest: [o.publicLimit("report scan failures"), o.user], schema: { tags, body: scanFailureBodySchema } }, async (req, reply) =>
    reply.status(202).send(await o.faults.reportScanFailure(who(req).sub, req.body)),
  );

  app.get("/v1/me", { onRequest: o.user, schema: { tags } }, async (req) => {
    await ensureUser(o.db, who(req).sub);
    return (await wallet(o.db, who(req).sub))!;
  });
}
