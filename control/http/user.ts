import { z } from "zod";
import { chargeRequestBodySchema, scanFailureBodySchema, sessionParamsSchema, textSchema } from "../../contracts/index.ts";
import type { FaultService } from "../faults/service.ts";
import { inTx, type Db } from "../db.ts";
import type { Metrics } from "../metrics.ts";
import type { SessionService } from "../sessions/service.ts";
import { receiptOf } from "../sessions/receipt.ts";
import { sessionsOfUser, toApi } from "../sessions/store.ts";
import { decodeCursor, pageOf } from "../cursor.ts";
import { ensureUser, payDebtFromBalance, wallet } from "../wallet.ts";
import { audit } from "../audit.ts";
import type { PaymentService } from "../payments/service.ts";
import type { App, Hook } from "./server.ts";
import { sessionEvents } from "./sse.ts";
import type { StreamCounter } from "./streams.ts";
import { ApiError } from "../errors.ts";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Subjects } from "../../contracts/index.ts";
import { content, createdOrderResponse, meResponse, orderResponse, receiptResponse, responses, sessionResponse, walletResponse, withdrawalResponse } from "./schemas.ts";

/** An idempotency key: the client's name for one intended movement of money. */
export const idempotencyKeySchema = textSchema(1, 200);
const cents = z.number().int().positive().max(100_000_000);

/** The user calls of the protocol (admins may also read and stop any session). */
export function userRoutes(
  app: App,
  o: {
    db: Db;
    /** For the audit log's times. */
    clock: () => number;
    nc: NatsConnection;
    subjects: Subjects;
    metrics: Metrics;
    sessions: SessionService;
    faults: FaultService;
    payments: PaymentService;
    streams: StreamCounter;
    /** The shortest duration target (MIN_TARGET_DURATION_S). */
    minDurationS: number;
    publicLimit: (name: string) => Hook;
    user: Hook;
    userOrAdmin: Hook;
  },
) {
  const tags = ["user"];
  const who = (req: { principal?: { sub: string; role: string } }) => req.principal! as { sub: string; role: "admin" | "user" | "franchisee" };

  app.post(
    "/v1/charge-requests",
    {
      onRequest: o.user,
      schema: {
        tags,
        operationId: "requestCharge",
        summary: "Start a charge at the terminal whose QR code was scanned",
        body: chargeRequestBodySchema,
        response: responses({ 201: sessionResponse }, [402, 404, 409]),
      },
    },
    async (req, reply) => {
      const t = req.body.target;
      if ("durationS" in t && t.durationS < o.minDurationS)
        throw new ApiError(400, "invalid_request", "invalid body", [
          { path: "body.target.durationS", message: `must be at least ${o.minDurationS} s (MIN_TARGET_DURATION_S)` },
        ]);
      const session = await o.sessions.requestCharge(who(req).sub, req.body);
      return reply.status(201).send(session);
    },
  );

  app.get(
    "/v1/sessions/:sessionId",
    { onRequest: o.userOrAdmin, schema: { tags, operationId: "getSession", summary: "Read a session (live figures while it runs)", params: sessionParamsSchema, response: responses({ 200: sessionResponse }, [404]) } },
    async (req) => o.sessions.get(who(req), req.params.sessionId),
  );

  app.get(
    "/v1/sessions/:sessionId/receipt",
    {
      onRequest: o.userOrAdmin,
      schema: {
        tags,
        operationId: "getSessionReceipt",
        summary: "The receipt of an ended session: energy, duration, the fee by tariff period, payment and refunds",
        params: sessionParamsSchema,
        response: responses({ 200: receiptResponse }, [404, 409]),
      },
    },
    async (req) => receiptOf(o.db, await o.sessions.ownSession(who(req), req.params.sessionId)),
  );

  app.post(
    "/v1/sessions/:sessionId/stop",
    {
      onRequest: o.userOrAdmin,
      schema: { tags, operationId: "stopSession", summary: "Stop a session", params: sessionParamsSchema, response: responses({ 202: z.object({ sessionId: z.string(), accepted: z.literal(true) }) }, [404, 409]) },
    },
    async (req, reply) => {
      await o.sessions.stop(who(req), req.params.sessionId);
      return reply.status(202).send({ sessionId: req.params.sessionId, accepted: true as const });
    },
  );

  app.get(
    "/v1/sessions/:sessionId/events",
    {
      onRequest: o.userOrAdmin,
      schema: {
        tags,
        operationId: "followSession",
        summary: "Server-sent events of a session: state changes and progress",
        params: sessionParamsSchema,
        response: responses({ 200: content("text/event-stream", "a stream of `session` events") }, [404]),
      },
    },
    async (req, reply) => {
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
    },
  );

  // Counted per client address too: a scan-failure report opens or raises a franchisee's fault.
  app.post(
    "/v1/scan-failures",
    {
      onRequest: [o.publicLimit("report scan failures"), o.user],
      schema: { tags, operationId: "reportScanFailure", summary: "Report that a terminal's QR code did not scan", body: scanFailureBodySchema, response: responses({ 202: z.object({ faultId: z.string() }) }, [404]) },
    },
    async (req, reply) => reply.status(202).send(await o.faults.reportScanFailure(who(req).sub, req.body)),
  );

  app.get("/v1/me", { onRequest: o.user, schema: { tags, operationId: "getMe", summary: "The user's wallet: balance, held, credit limit and debt", response: responses({ 200: meResponse }) } }, async (req) => {
    await ensureUser(o.db, who(req).sub);
    return (await wallet(o.db, who(req).sub))!;
  });

  app.get(
    "/v1/me/sessions",
    {
      onRequest: o.user,
      schema: {
        tags,
        operationId: "listMySessions",
        summary: "The user's sessions, newest first, a page at a time",
        querystring: z.object({ limit: z.coerce.number().int().positive().max(200).default(50), cursor: z.string().max(400).optional() }),
        response: responses({ 200: z.object({ items: z.array(sessionResponse), next: z.string().nullable() }) }),
      },
    },
    async (req) => {
      const { limit, cursor } = req.query;
      const after = cursor ? (decodeCursor(cursor, ["n", "s"]) as [number, string]) : null;
      const rows = await sessionsOfUser(o.db, who(req).sub, limit + 1, after && { createdAt: after[0], sessionId: after[1] });
      return pageOf(rows, limit, (s) => [s.createdAt, s.sessionId], (s) => toApi(s));
    },
  );

  app.post(
    "/v1/me/payment-orders",
    {
      onRequest: o.user,
      schema: {
        tags,
        operationId: "createPaymentOrder",
        summary: "Create an order to pay in through a payment provider (a top-up, or paying off postpaid debt)",
        body: z.object({
          provider: textSchema(1, 32),
          purpose: z.enum(["topup", "debt"]).default("topup"),
          /** Required for a top-up; a `debt` order defaults to the whole debt. */
          amountCents: cents.optional(),
          idempotencyKey: idempotencyKeySchema,
        }),
        response: responses({ 201: createdOrderResponse, 200: createdOrderResponse }, [404, 409]),
      },
    },
    async (req, reply) => {
      const r = await o.payments.createOrder(who(req).sub, req.body);
      return reply.status(r.created ? 201 : 200).send(r.order);
    },
  );

  app.get(
    "/v1/me/payment-orders/:orderId",
    {
      onRequest: o.userOrAdmin,
      schema: {
        tags,
        operationId: "getPaymentOrder",
        summary: "A payment order; a pending one is first asked about at the provider (its notification may not have come)",
        params: z.object({ orderId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/) }),
        response: responses({ 200: orderResponse }, [404]),
      },
    },
    async (req) => o.payments.getOrder(who(req), req.params.orderId),
  );

  app.post(
    "/v1/me/debt-payments",
    {
      onRequest: o.user,
      schema: {
        tags,
        operationId: "payDebtFromWallet",
        summary: "Pay postpaid debt from the wallet's available balance",
        body: z.object({ amountCents: cents.optional(), idempotencyKey: idempotencyKeySchema }),
        response: responses({ 201: z.object({ settledCents: z.number().int(), wallet: walletResponse }), 200: z.object({ settledCents: z.number().int(), wallet: walletResponse }) }, [402, 409]),
      },
    },
    async (req, reply) => {
      const userId = who(req).sub;
      await ensureUser(o.db, userId);
      const r = await inTx(o.db, async (tx) => {
        const before = await wallet(tx, userId);
        const paid = await payDebtFromBalance(tx, userId, req.body.amountCents, `wallet:${req.body.idempotencyKey}`);
        // A person moving money: audited, once (a repeated key settles nothing and adds no entry).
        if (!paid.repeat)
          await audit(tx, {
            actor: who(req),
            action: "wallet.pay_debt",
            objectType: "user",
            objectId: userId,
            before,
            after: { ...(await wallet(tx, userId)), settledCents: paid.settledCents },
            atMs: o.clock(),
          });
        return paid;
      });
      return reply.status(r.repeat ? 200 : 201).send({ settledCents: r.settledCents, wallet: (await wallet(o.db, userId))! });
    },
  );

  app.post(
    "/v1/me/withdrawals",
    {
      onRequest: o.user,
      schema: {
        tags,
        operationId: "withdrawBalance",
        summary: "Withdraw available balance back to the user's account at the payment provider",
        body: z.object({ amountCents: cents, idempotencyKey: idempotencyKeySchema, provider: textSchema(1, 32).optional() }),
        response: responses({ 201: z.object({ withdrawal: withdrawalResponse, wallet: walletResponse }), 200: z.object({ withdrawal: withdrawalResponse, wallet: walletResponse }) }, [402, 404, 409]),
      },
    },
    async (req, reply) => {
      const r = await o.payments.withdraw(who(req), who(req).sub, req.body);
      return reply.status(r.created ? 201 : 200).send({ withdrawal: r.withdrawal, wallet: r.wallet });
    },
  );
}
