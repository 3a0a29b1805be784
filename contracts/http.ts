import { z } from "zod";
import { idSchema, qrSchema, textSchema, tsSchema } from "./ids.ts";
import { sessionStopReasonSchema } from "./wire.ts";
import { tariffPeriodsSchema } from "./billing/tariff.ts";
import { isValidTimeZone } from "./billing/zoned.ts";

export const errorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});

/** Where a terminal stands (the seed's 地理位置): WGS 84 degrees and a postal address. */
export const locationSchema = z.object({
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  address: textSchema(1, 500).nullable().default(null),
});
export type Location = z.infer<typeof locationSchema>;

/** kW a region's site can supply, up to 1 GW, at most 3 decimals (whole watts). */
export const capacityKwSchema = z
  .number()
  // One watt at least: a smaller positive number would be stored as 0.000 kW.
  .min(0.001)
  .max(1_000_000)
  .refine((v) => Math.abs(v * 1000 - Math.round(v * 1000)) < 1e-6, "at most 3 decimals (whole watts)");

export const regionBodySchema = z.object({
  name: textSchema(1, 200),
  timezone: textSchema(1, 64).refine(isValidTimeZone, "must be an IANA time zone such as Asia/Shanghai"),
  /** Extension (1.1): kW the site can supply; omitted keeps what is stored, null clears it. */
  capacityKw: capacityKwSchema.nullable().optional(),
});
export const franchiseeBodySchema = z.object({ name: textSchema(1, 200) });
export const gatewayBodySchema = z.object({ regionId: idSchema });

/**
 * A terminal's profile. Every number is finite and bounded (a profile feeds the holds' exact
 * arithmetic and the fault rules of every reading): currents up to 1000 A, voltages up to 2000 V,
 * power a whole number of watts up to 1 MW, debounce up to an hour, clear time up to a day.
 */
export const PROFILE_LIMITS = { maxA: 1000, maxV: 2000, maxPowerW: 1_000_000, maxDebounceS: 3600, maxClearS: 86_400 } as const;
/** A terminal's thresholds when its registration sets none; the fault stage uses them for a terminal it does not know yet. */
export const DEFAULT_TERMINAL_PROFILE = {
  onCurrentA: [16, 18],
  offCurrentMaxA: 0.1,
  maxPowerW: 4000,
  faultDebounceS: 2,
  faultClearS: 10,
  /** 220 V ± 10 %. */
  voltageV: [198, 242],
} as const satisfies Record<string, number | readonly [number, number]>;
const D = DEFAULT_TERMINAL_PROFILE;
const amperes = z.number().nonnegative().max(PROFILE_LIMITS.maxA);
const volts = z.number().nonnegative().max(PROFILE_LIMITS.maxV);
export const terminalProfileSchema = z
  .object({
    onCurrentA: z
      .tuple([amperes, amperes])
      .refine(([lo, hi]) => lo <= hi, "low must not exceed high")
      .default([...D.onCurrentA]),
    offCurrentMaxA: amperes.default(D.offCurrentMaxA),
    maxPowerW: z.number().int().positive().max(PROFILE_LIMITS.maxPowerW).default(D.maxPowerW),
    faultDebounceS: z.number().int().positive().max(PROFILE_LIMITS.maxDebounceS).default(D.faultDebounceS),
    faultClearS: z.number().int().positive().max(PROFILE_LIMITS.maxClearS).default(D.faultClearS),
    /** Extension: supply voltage outside this range is a fault (220 V ± 10 %). */
    voltageV: z
      .tuple([volts, volts])
      .refine(([lo, hi]) => lo <= hi, "low must not exceed high")
      .default([...D.voltageV]),
  })
  .default({ ...D, onCurrentA: [...D.onCurrentA], voltageV: [...D.voltageV] });
export type TerminalProfile = z.infer<typeof terminalProfileSchema>;

export const terminalBodySchema = z.object({
  qr: qrSchema,
  gatewayId: idSchema,
  regionId: idSchema,
  franchiseeId: idSchema,
  profile: terminalProfileSchema,
  /** Extension (1.1): where the terminal stands; omitted keeps what is stored, null clears it. */
  location: locationSchema.nullable().optional(),
});

export const tariffBodySchema = z.object({
  effectiveFrom: tsSchema.optional(),
  periods: tariffPeriodsSchema,
});

export const userBodySchema = z.object({
  creditLimitCents: z.number().int().nonnegative().max(100_000_000).optional(),
});

export const topupBodySchema = z.object({
  amountCents: z.number().int().positive().max(100_000_000),
  reference: textSchema(1, 200),
});

/**
 * A charge target. The smallest are 1 Wh, 1 s (the edge raises it to MIN_TARGET_DURATION_S,
 * default 60) and 1 cent: a smaller target would round its prepaid hold to nothing.
 */
export const targetSchema = z.union([
  z.object({ energyWh: z.number().min(1).max(1_000_000) }).strict(),
  z.object({ durationS: z.number().int().positive().max(7 * 86_400) }).strict(),
  z.object({ amountCents: z.number().int().min(1).max(100_000_000) }).strict(),
]);
export type Target = z.infer<typeof targetSchema>;

export const chargeRequestBodySchema = z.object({
  qr: qrSchema,
  target: targetSchema,
  payment: z.enum(["prepaid", "postpaid"]),
});
export type ChargeRequestBody = z.infer<typeof chargeRequestBodySchema>;

export const scanFailureBodySchema = z
  .object({ qr: qrSchema.optional(), terminalId: idSchema.optional(), reason: textSchema(1, 500) })
  .refine((b) => b.qr !== undefined || b.terminalId !== undefined, "qr or terminalId is required");

export const sessionStateSchema = z.enum(["authorizing", "active", "stopping", "completed", "failed"]);
export type SessionState = z.infer<typeof sessionStateSchema>;

export const sessionSchema = z.object({
  sessionId: z.string(),
  userId: idSchema,
  terminalId: idSchema,
  state: sessionStateSchema,
  target: targetSchema,
  payment: z.enum(["prepaid", "postpaid"]),
  energyWh: z.number(),
  durationS: z.number(),
  feeCents: z.number().int(),
  heldCents: z.number().int(),
  stopReason: sessionStopReasonSchema.nullable(),
  createdAt: tsSchema,
  startedAt: tsSchema.nullable(),
  endedAt: tsSchema.nullable(),
  /** Extension: the tariff version the session is billed on (its price is locked at start). */
  tariffVersion: z.number().int(),
});
export type Session = z.infer<typeof sessionSchema>;

export const meSchema = z.object({
  userId: idSchema,
  balanceCents: z.number().int(),
  heldCents: z.number().int(),
  creditLimitCents: z.number().int(),
  debtCents: z.number().int(),
});

export const idParams = (name: string) => z.object({ [name]: idSchema });
/** Session ids are the platform's own (`S-<uuid>`) and travel as a NATS subject token (live updates). */
export const sessionIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "must be a session id such as S-0b6c…");
export const sessionParamsSchema = z.object({ sessionId: sessionIdSchema });
