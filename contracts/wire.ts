import { z } from "zod";
import { idSchema, tsSchema } from "./ids.ts";

/** One meter reading (protocol: Reading). Unknown fields are dropped, so newer gateways stay compatible. */
export const readingSchema = z.object({
  ts: tsSchema,
  seq: z.number().int().nonnegative(),
  state: z.enum(["on", "off"]),
  currentA: z.number().nonnegative(),
  voltageV: z.number().nonnegative(),
  powerW: z.number().nonnegative().optional(),
  energyWh: z.number().nonnegative(),
  sessionId: z.string().min(1).max(128).optional(),
});
export type Reading = z.infer<typeof readingSchema>;

export const batchReadingSchema = readingSchema.extend({ terminalId: idSchema });
export type BatchReading = z.infer<typeof batchReadingSchema>;

/** A batch is checked reading by reading (see ingest), so only its envelope is validated here. */
export const batchEnvelopeSchema = z.object({ readings: z.array(z.unknown()).min(1).max(10_000) });

export const handshakeResultSchema = z.object({
  type: z.literal("handshake_result"),
  sessionId: z.string().min(1),
  terminalCode: z.string().min(1),
  match: z.boolean(),
  ts: tsSchema,
});
export const powerOnAckSchema = z.object({
  type: z.literal("power_on_ack"),
  sessionId: z.string().min(1),
  energyWh: z.number().nonnegative(),
  ts: tsSchema,
});
export const powerOffAckSchema = z.object({
  type: z.literal("power_off_ack"),
  sessionId: z.string().min(1),
  energyWh: z.number().nonnegative(),
  ts: tsSchema,
});
/** Protocol 1.1: the terminal switched off by itself at the `limitWh`/`limitS` of its `power_on`. */
export const powerOffEventSchema = z.object({
  type: z.literal("power_off"),
  sessionId: z.string().min(1),
  reason: z.literal("limit"),
  energyWh: z.number().nonnegative(),
  ts: tsSchema,
});
export const bootSchema = z.object({
  type: z.literal("boot"),
  energyWh: z.number().nonnegative(),
  ts: tsSchema,
});
export const terminalEventSchema = z.discriminatedUnion("type", [
  handshakeResultSchema,
  powerOnAckSchema,
  powerOffAckSchema,
  powerOffEventSchema,
  bootSchema,
]);
export type TerminalEvent = z.infer<typeof terminalEventSchema>;

export const stopReasonSchema = z.enum([
  "target_reached",
  "user_stop",
  "fault",
  "credit_exhausted",
  "terminal_offline",
  "admin",
]);
export type PowerOffReason = z.infer<typeof stopReasonSchema>;

export const sessionStopReasonSchema = z.enum([...stopReasonSchema.options, "handshake_failed", "handshake_timeout", "limit"]);
export type SessionStopReason = z.infer<typeof sessionStopReasonSchema>;

export const handshakeCommandSchema = z.object({
  type: z.literal("handshake"),
  cmdId: z.string().min(1),
  sessionId: z.string().min(1),
  terminalCode: z.string(),
});
export const powerOnCommandSchema = z.object({
  type: z.literal("power_on"),
  cmdId: z.string().min(1),
  sessionId: z.string().min(1),
  limitWh: z.number().positive().optional(),
  limitS: z.number().int().positive().optional(),
});
export const powerOffCommandSchema = z.object({
  type: z.literal("power_off"),
  cmdId: z.string().min(1),
  sessionId: z.string().min(1),
  reason: stopReasonSchema,
});
export const commandSchema = z.discriminatedUnion("type", [
  handshakeCommandSchema,
  powerOnCommandSchema,
  powerOffCommandSchema,
]);
export type Command = z.infer<typeof commandSchema>;

export const faultKindSchema = z.enum(["on_current_out_of_range", "off_current_leak", "scan_failure"]);
export const faultEventSchema = z.object({
  faultId: z.string(),
  kind: z.string(),
  status: z.enum(["open", "acknowledged", "resolved"]),
  terminalId: idSchema,
  franchiseeId: idSchema,
  regionId: idSchema,
  openedAt: tsSchema,
  resolvedAt: tsSchema.nullable(),
  count: z.number().int().positive(),
  evidence: z.record(z.string(), z.unknown()),
});
export type FaultEvent = z.infer<typeof faultEventSchema>;

/** What a dead letter carries (protocol: Operations). */
export const deadLetterSchema = z.object({
  subject: z.string(),
  reason: z.string(),
  payload: z.string(),
});
export type DeadLetter = z.infer<typeof deadLetterSchema>;
