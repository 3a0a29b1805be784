import { z } from "zod";
import { errorBodySchema, faultEventSchema, idSchema, meSchema, sessionSchema, sessionStopReasonSchema, tsSchema } from "../../contracts/index.ts";

/**
 * Response schemas of the HTTP API, for the OpenAPI document and for the answers themselves (the
 * zod serializer checks every answer against its status's schema: an answer that does not match is
 * a bug, answered 500, and the route test fails). Error statuses answer the protocol's error shape.
 */

/** A JSON answer that is not JSON (CSV, HTML, event streams, Prometheus text). */
export const content = (type: string, description: string) => ({ description, content: { [type]: { schema: z.string() } } });

type Ok = Record<number, unknown>;
/**
 * The responses of a route: its own successes, and the error shape for each error status it may
 * answer. Every route may answer 400 (a query or path with U+0000 is refused for any route), 429
 * and 503 (rate limit, a dependency down); `auth` routes also 401 and 403.
 */
export function responses(ok: Ok, errors: number[] = [], o: { auth?: boolean } = { auth: true }): Record<number, unknown> {
  const out: Record<number, unknown> = { ...ok };
  const all = new Set([400, ...(o.auth === false ? [] : [401, 403]), 429, 503, ...errors]);
  for (const e of [...all].sort()) if (!(e in out)) out[e] = errorBodySchema;
  return out;
}
/** The same for a public route (no token). */
export const publicResponses = (ok: Ok, errors: number[] = []) => responses(ok, errors, { auth: false });

export const sessionResponse = sessionSchema;
export const meResponse = meSchema;
export const faultResponse = faultEventSchema.extend({ acknowledgedAt: tsSchema.nullable() });

export const walletResponse = meSchema;

export const usageTotals = { energyWh: z.number(), feeCents: z.number().int(), sessions: z.number().int(), hourly: z.array(z.number()).length(24) };

export const orderResponse = z.object({
  orderId: z.string(),
  provider: z.string(),
  userId: idSchema,
  purpose: z.enum(["topup", "debt"]),
  amountCents: z.number().int(),
  status: z.enum(["pending", "paid", "closed"]),
  transactionId: z.string().nullable(),
  createdAt: tsSchema,
  expiresAt: tsSchema,
  paidAt: tsSchema.nullable(),
});
export const createdOrderResponse = orderResponse.extend({
  /** What the app hands to the provider's SDK to open the payment. */
  payParams: z.record(z.string(), z.string()),
});

export const withdrawalResponse = z.object({
  withdrawalId: z.string(),
  userId: idSchema,
  provider: z.string(),
  amountCents: z.number().int(),
  status: z.enum(["pending", "succeeded", "failed"]),
  transactionId: z.string().nullable(),
  failure: z.string().nullable(),
  createdAt: tsSchema,
  doneAt: tsSchema.nullable(),
});

export const refundResponse = z.object({
  refundId: z.string(),
  sessionId: z.string(),
  userId: idSchema,
  amountCents: z.number().int(),
  reason: z.string(),
  actor: z.string(),
  createdAt: tsSchema,
});

export const receiptResponse = z.object({
  sessionId: z.string(),
  userId: idSchema,
  terminalId: idSchema,
  regionId: idSchema,
  franchiseeId: idSchema,
  state: z.enum(["completed", "failed"]),
  stopReason: sessionStopReasonSchema.nullable(),
  tariffVersion: z.number().int(),
  timezone: z.string(),
  createdAt: tsSchema,
  startedAt: tsSchema.nullable(),
  endedAt: tsSchema.nullable(),
  durationS: z.number(),
  energyWh: z.number(),
  lines: z.array(
    z.object({
      start: z.string(),
      end: z.string(),
      energyCentsPerKwh: z.number().int(),
      timeCentsPerHour: z.number().int(),
      energyWh: z.number(),
      durationS: z.number(),
      energyCents: z.number().int(),
      timeCents: z.number().int(),
    }),
  ),
  capAdjustmentCents: z.number().int(),
  feeCents: z.number().int(),
  payment: z.object({
    method: z.enum(["prepaid", "postpaid"]),
    heldCents: z.number().int(),
    capturedCents: z.number().int(),
    releasedCents: z.number().int(),
    debtCents: z.number().int(),
  }),
  refunds: z.array(z.object({ refundId: z.string(), amountCents: z.number().int(), reason: z.string(), createdAt: tsSchema })),
  refundedCents: z.number().int(),
  netCents: z.number().int(),
});

const statementTotals = { sessions: z.number().int(), energyWh: z.number(), feeCents: z.number().int(), refundCents: z.number().int(), netCents: z.number().int() };
export const statementResponse = z.object({
  franchiseeId: idSchema,
  month: z.string(),
  timezone: z.string(),
  from: tsSchema,
  to: tsSchema,
  generatedAt: tsSchema,
  terminals: z.array(z.object({ terminalId: idSchema, ...statementTotals })),
  totals: z.object(statementTotals),
  refunds: z.array(z.object({ refundId: z.string(), sessionId: z.string(), terminalId: idSchema, amountCents: z.number().int(), reason: z.string(), createdAt: tsSchema })),
});
