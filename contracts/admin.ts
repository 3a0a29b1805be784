import { z } from "zod";
import { idSchema, textSchema, tsSchema } from "./ids.ts";
import { errorBodySchema, sessionStateSchema, terminalProfileSchema } from "./http.ts";
import { tariffPeriodSchema } from "./billing/tariff.ts";
import { sessionStopReasonSchema } from "./wire.ts";

/**
 * The admin API of protocol 1.1 beyond registration: reading and listing the registry, retiring,
 * maintenance, network-wide lists and the audit log (docs/protocol-implementation.md).
 */

export const maintenanceBodySchema = z.object({
  reason: textSchema(1, 500),
  /** When the terminal is expected back in service (epoch ms); omitted when not known. */
  expectedReturnAt: tsSchema.nullable().optional(),
});
/**
 * A body a client may leave out (`curl -X POST` with no data): Fastify reads a request without a
 * body as null, which `.optional()` or `.default()` alone refuse (400); read as `{}` instead.
 */
export const omittableBody = <T extends z.ZodObject>(body: T) => body.nullish().transform((v): z.output<T> => v ?? body.parse({}));
export const retireBodySchema = omittableBody(z.object({ reason: textSchema(1, 500).optional() }));

/** A listing's page size and cursor (opaque, from the previous page's `next`). */
export const pageQuerySchema = z.object({
  cursor: z.string().min(1).max(400).optional(),
  limit: z.coerce.number().int().positive().max(500).default(100),
});
export const pageOf = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), next: z.string().nullable() });

export const registryStateSchema = z.enum(["active", "retired"]);
export const terminalStatusSchema = z.enum(["active", "maintenance", "retired"]);
/** A terminal's state as the charge page and console show it: whether it can charge now, and why not. */
export const terminalLiveStateSchema = z.enum(["available", "busy", "offline", "faulted", "maintenance", "retired"]);

const stamps = { createdAt: tsSchema, updatedAt: tsSchema, retiredAt: tsSchema.nullable() };

export const regionSchema = z.object({ regionId: idSchema, name: z.string(), timezone: z.string(), capacityKw: z.number().nullable(), ...stamps });
export const franchiseeSchema = z.object({ franchiseeId: idSchema, name: z.string(), ...stamps });
export const gatewaySchema = z.object({ gatewayId: idSchema, regionId: idSchema, ...stamps });
export const maintenanceSchema = z.object({ reason: z.string(), since: tsSchema, expectedReturnAt: tsSchema.nullable() });
export const terminalSchema = z.object({
  terminalId: idSchema,
  qr: z.string(),
  gatewayId: idSchema,
  regionId: idSchema,
  franchiseeId: idSchema,
  profile: terminalProfileSchema,
  location: z.object({ latitude: z.number(), longitude: z.number(), address: z.string().nullable() }).nullable(),
  status: terminalStatusSchema,
  maintenance: maintenanceSchema.nullable(),
  ...stamps,
});
/** A terminal with what its telemetry says now (admin reads and lists). */
export const terminalWithLiveSchema = terminalSchema.extend({
  state: terminalLiveStateSchema,
  lastReadingAt: tsSchema.nullable(),
});
export const tariffVersionSchema = z.object({
  regionId: idSchema,
  version: z.number().int(),
  effectiveFrom: tsSchema,
  periods: z.array(tariffPeriodSchema),
  createdAt: tsSchema,
});
export const adminUserSchema = z.object({
  userId: idSchema,
  balanceCents: z.number().int(),
  heldCents: z.number().int(),
  creditLimitCents: z.number().int(),
  debtCents: z.number().int(),
  ...stamps,
});
export const adminSessionSchema = z.object({
  sessionId: z.string(),
  userId: idSchema,
  terminalId: idSchema,
  gatewayId: idSchema,
  regionId: idSchema,
  franchiseeId: idSchema,
  state: sessionStateSchema,
  payment: z.enum(["prepaid", "postpaid"]),
  energyWh: z.number(),
  durationS: z.number(),
  feeCents: z.number().int(),
  heldCents: z.number().int(),
  stopReason: sessionStopReasonSchema.nullable(),
  tariffVersion: z.number().int(),
  createdAt: tsSchema,
  startedAt: tsSchema.nullable(),
  endedAt: tsSchema.nullable(),
});
export const adminFaultSchema = z.object({
  faultId: z.string(),
  kind: z.string(),
  status: z.enum(["open", "acknowledged", "resolved"]),
  terminalId: idSchema,
  franchiseeId: idSchema,
  regionId: idSchema,
  openedAt: tsSchema,
  resolvedAt: tsSchema.nullable(),
  acknowledgedAt: tsSchema.nullable(),
  count: z.number().int(),
  evidence: z.record(z.string(), z.unknown()),
});
export const auditEntrySchema = z.object({
  auditId: z.number().int(),
  at: tsSchema,
  actor: z.object({ sub: z.string(), role: z.string() }),
  action: z.string(),
  objectType: z.string(),
  objectId: z.string(),
  before: z.unknown(),
  after: z.unknown(),
  reason: z.string().nullable(),
});

/** A comma-separated list of values of an enum (`state=active,stopping`). */
const stateList = <T extends z.ZodEnum<Record<string, string>>>(values: T) =>
  z
    .string()
    .max(200)
    .transform((v) => v.split(",").filter(Boolean))
    .pipe(z.array(values).min(1));

/** Filters of the network-wide lists: a time range on when each began (epoch ms, from inclusive, to exclusive). */
const timeRange = { from: z.coerce.number().int().nonnegative().optional(), to: z.coerce.number().int().nonnegative().optional() };
export const sessionsQuerySchema = pageQuerySchema.extend({
  ...timeRange,
  regionId: idSchema.optional(),
  franchiseeId: idSchema.optional(),
  terminalId: idSchema.optional(),
  userId: idSchema.optional(),
  state: stateList(sessionStateSchema).optional(),
  stopReason: stateList(sessionStopReasonSchema).optional(),
});
export const faultsQuerySchema = pageQuerySchema.extend({
  ...timeRange,
  regionId: idSchema.optional(),
  franchiseeId: idSchema.optional(),
  terminalId: idSchema.optional(),
  /** Who reported a scan failure. */
  userId: idSchema.optional(),
  state: stateList(z.enum(["open", "acknowledged", "resolved"])).optional(),
  kind: z.string().max(64).regex(/^[a-z_]+$/).optional(),
});
export const auditQuerySchema = pageQuerySchema.extend({
  ...timeRange,
  objectType: z.string().max(64).regex(/^[a-z_]+$/).optional(),
  objectId: textSchema(1, 128).optional(),
  actor: textSchema(1, 128).optional(),
  action: z.string().max(64).regex(/^[a-z_.]+$/).optional(),
});
export const registryQuerySchema = pageQuerySchema.extend({
  regionId: idSchema.optional(),
  franchiseeId: idSchema.optional(),
  gatewayId: idSchema.optional(),
  state: stateList(terminalStatusSchema).optional(),
});

/** The error answers a route documents, by status, all in the protocol's one error shape. */
export const errorResponses = (...statuses: (400 | 401 | 402 | 403 | 404 | 409 | 429 | 503)[]) =>
  Object.fromEntries(statuses.map((s) => [s, errorBodySchema])) as Record<number, typeof errorBodySchema>;
