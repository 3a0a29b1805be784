import { z } from "zod";
import { idSchema, tsSchema } from "./ids.ts";
import { boundedNumber, energyWhSchema, wireBounds as max, wireTextSchema, wireTsSchema } from "./bounds.ts";

/**
 * One meter reading (protocol: Reading). Unknown fields are dropped, so newer gateways stay
 * compatible. Every number is bounded (contracts/bounds.ts): what a meter can report.
 */
export const readingSchema = z.object({
  ts: wireTsSchema,
  seq: boundedNumber(max.seq, { int: true }),
  state: z.enum(["on", "off"]),
  currentA: boundedNumber(max.currentA),
  voltageV: boundedNumber(max.voltageV),
  powerW: boundedNumber(max.powerW).optional(),
  energyWh: energyWhSchema,
  sessionId: wireTextSchema.optional(),
});
export type Reading = z.infer<typeof readingSchema>;

export const batchReadingSchema = readingSchema.extend({ terminalId: idSchema });
export type BatchReading = z.infer<typeof batchReadingSchema>;

/** A batch is checked reading by reading (see ingest), so only its envelope is validated here. */
export const batchEnvelopeSchema = z.object({ readings: z.array(z.unknown()).min(1).max(10_000) });

export const handshakeResultSchema = z.object({
  type: z.literal("handshake_result"),
  sessionId: wireTextSchema,
  terminalCode: wireTextSchema,
  match: z.boolean(),
  ts: wireTsSchema,
});
export const powerOnAckSchema = z.object({
  type: z.literal("power_on_ack"),
  sessionId: wireTextSchema,
  energyWh: energyWhSchema,
  ts: wireTsSchema,
});
export const powerOffAckSchema = z.object({
  type: z.literal("power_off_ack"),
  sessionId: wireTextSchema,
  energyWh: energyWhSchema,
  ts: wireTsSchema,
});
/** Protocol 1.1: the terminal switched off by itself at the `limitWh`/`limitS` of its `power_on`. */
export const powerOffEventSchema = z.object({
  type: z.literal("power_off"),
  sessionId: wireTextSchema,
  reason: z.literal("limit"),
  energyWh: energyWhSchema,
  ts: wireTsSchema,
});
export const bootSchema = z.object({
  type: z.literal("boot"),
  energyWh: energyWhSchema,
  ts: wireTsSchema,
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
  cmdId: wireTextSchema,
  sessionId: wireTextSchema,
  terminalCode: z.string(),
});
export const powerOnCommandSchema = z.object({
  type: z.literal("power_on"),
  cmdId: wireTextSchema,
  sessionId: wireTextSchema,
  limitWh: boundedNumber(max.limitWh).positive().optional(),
  limitS: boundedNumber(max.limitS, { int: true }).positive().optional(),
});
export const powerOffCommandSchema = z.object({
  type: z.literal("power_off"),
  cmdId: wireTextSchema,
  sessionId: wireTextSchema,
  reason: stopReasonSchema,
});
export const commandSchema = z.discriminatedUnion("type", [
  handshakeCommandSchema,
  powerOnCommandSchema,
  powerOffCommandSchema,
]);
export type Command = z.infer<typeof commandSchema>;

export const faultEventSchema = z.object({
  faultId: z.string(),
  kind: z.string(),
  status: z.enum(["open", "acknowledged", "resolved"]),
  terminalId: idSchema,
  franchiseeId: idSchema,
  regionId: idSchema,
  openedAt: tsSchema,
  resolvedAt: tsSchema.nullable(),
  count: z.number().int().positive().max(2_147_483_647), // the `integer` column
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
