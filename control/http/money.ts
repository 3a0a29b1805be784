import { z } from "zod";
import { idSchema, omittableBody, sessionParamsSchema, textSchema } from "../../contracts/index.ts";
import { inTx, type Db } from "../db.ts";
import type { PaymentService } from "../payments/service.ts";
import { refusedNotifications } from "../payments/store.ts";
import { refundFee } from "../refunds.ts";
import type { App, Hook } from "./server.ts";
import { publicResponses, refundResponse, responses, walletResponse, withdrawalResponse } from "./schemas.ts";
import { idempotencyKeySchema } from "./user.ts";

/** The longest notification body read (a provider's is a few KB). */
const NOTIFY_BODY_LIMIT = 64 * 1024;

/**
 * Money movements beside a charge: providers' payment notifications (public, authenticated by
 * their signature), and the admin's refunds, withdrawals for a user, and the reconciliation of
 * payments whose notification never came.
 */
export function moneyRoutes(
  app: App,
  o: { db: Db; clock: () => number; payments: PaymentService; admin: Hook; publicLimit: (name: string) => Hook },
) {
  const tags = ["admin"];
  const who = (req: { principal?: { sub: string; role: string } }) => req.principal! as { sub: string; role: "admin" | "user" | "franchisee" };

  // The signature covers the body's exact bytes: the notification route reads it as text, whatever
  // its content type (WeChat Pay sends JSON, Alipay a form), in a scope of its own.
  app.register(async (plain) => {
    const scope = plain as unknown as App;
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "string", bodyLimit: NOTIFY_BODY_LIMIT }, (_req, body, done) => done(null, body));
    scope.post(
      "/v1/payments/notify/:provider",
      {
        onRequest: o.publicLimit("payment notifications"),
        schema: {
          tags: ["payments"],
          operationId: "paymentNotification",
          summary: "A payment provider's signed notification that an order was paid (called by the provider, not by apps)",
          security: [],
          params: z.object({ provider: z.string().regex(/^[a-z0-9_-]{1,32}$/) }),
          body: z.string().max(NOTIFY_BODY_LIMIT),
          response: publicResponses({ 200: z.object({ code: z.literal("SUCCESS"), message: z.string() }) }, [401, 404]),
        },
      },
      async (req) => {
        const headers: Record<string, string | undefined> = {};
        for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = Array.isArray(v) ? v[0] : v;
        const r = await o.payments.notify(req.params.provider, { headers, body: req.body });
        // WeChat Pay v3's acknowledgement; the provider stops repeating the notification.
        return { code: "SUCCESS" as const, message: r.credited ? "credited" : "already credited" };
      },
    );
  });

  app.post(
    "/v1/admin/sessions/:sessionId/refunds",
    {
      onRequest: o.admin,
      schema: {
        tags,
        operationId: "refundSessionFee",
        summary: "Refund part or all of a completed session's fee to the user's wallet (audited)",
        params: sessionParamsSchema,
        body: z.object({ amountCents: z.number().int().positive().max(100_000_000), reason: textSchema(1, 500), idempotencyKey: idempotencyKeySchema }),
        response: responses(
          {
            201: z.object({ refund: refundResponse, feeCents: z.number().int(), refundedCents: z.number().int(), wallet: walletResponse }),
            200: z.object({ refund: refundResponse, feeCents: z.number().int(), refundedCents: z.number().int(), wallet: walletResponse }),
          },
          [404, 409],
        ),
      },
    },
    async (req, reply) => {
      const r = await inTx(o.db, (tx) => refundFee(tx, who(req), req.params.sessionId, req.body, o.clock()));
      return reply.status(r.created ? 201 : 200).send({ refund: r.refund, feeCents: r.feeCents, refundedCents: r.refundedCents, wallet: r.wallet });
    },
  );

  app.post(
    "/v1/admin/users/:userId/withdrawals",
    {
      onRequest: o.admin,
      schema: {
        tags,
        operationId: "withdrawForUser",
        summary: "Pay a user's available balance back to their account at the payment provider (audited)",
        params: z.object({ userId: idSchema }),
        body: z.object({ amountCents: z.number().int().positive().max(100_000_000), reason: textSchema(1, 500), idempotencyKey: idempotencyKeySchema, provider: textSchema(1, 32).optional() }),
        response: responses({ 201: z.object({ withdrawal: withdrawalResponse, wallet: walletResponse }), 200: z.object({ withdrawal: withdrawalResponse, wallet: walletResponse }) }, [402, 404, 409]),
      },
    },
    async (req, reply) => {
      const r = await o.payments.withdraw(who(req), req.params.userId, req.body);
      return reply.status(r.created ? 201 : 200).send({ withdrawal: r.withdrawal, wallet: r.wallet });
    },
  );

  app.post(
    "/v1/admin/payments/reconcile",
    {
      onRequest: o.admin,
      schema: {
        tags,
        operationId: "reconcilePayments",
        summary: "Ask the providers about orders and payouts pending longer than olderThanS (notifications that never came)",
        body: omittableBody(z.object({ olderThanS: z.number().int().nonnegative().max(30 * 86_400).default(60) })),
        response: responses({ 200: z.object({ ordersChecked: z.number().int(), ordersPaid: z.number().int(), ordersClosed: z.number().int(), payoutsChecked: z.number().int() }) }),
      },
    },
    async (req) => o.payments.reconcile(req.body.olderThanS * 1000),
  );

  app.get(
    "/v1/admin/payments/refused-notifications",
    {
      onRequest: o.admin,
      schema: {
        tags,
        operationId: "listRefusedNotifications",
        summary: "Payment notifications refused (bad or replayed signature, stale, unknown order, wrong amount), newest first",
        querystring: z.object({ limit: z.coerce.number().int().positive().max(1000).default(100) }),
        response: responses({ 200: z.object({ items: z.array(z.object({ provider: z.string(), reason: z.string(), orderId: z.string().nullable(), receivedAt: z.number() })) }) }),
      },
    },
    async (req) => ({ items: await refusedNotifications(o.db, req.query.limit) }),
  );
}
