import { z } from "zod";
import { targetSchema } from "./http.ts";
import { tariffPeriodSchema } from "./billing/tariff.ts";
import { meterJsonSchema } from "./billing/meter.ts";
import { boundedNumber, energyWhSchema, wireBounds, wireTsSchema } from "./bounds.ts";
import { stopReasonSchema } from "./wire.ts";

/**
 * What the control service tells the cutoff processor when a session's power is confirmed on:
 * kept in a key-value bucket by terminalId, so a restarted processor finds it again.
 */
export const armSchema = z.object({
  sessionId: z.string(),
  terminalId: z.string(),
  /** The terminal's gateway: where its readings arrive (`tel.<gatewayId>.<terminalId>`). */
  gatewayId: z.string().optional(),
  startTs: wireTsSchema,
  startWh: energyWhSchema,
  target: targetSchema,
  /** The fee may not pass this (amount target, prepaid hold or remaining postpaid credit). */
  capCents: z.number().int().nonnegative(),
  /** Postpaid credit: cut one reading early rather than pass the limit. */
  capLookahead: z.boolean(),
  tariff: z.object({ version: z.number().int(), timezone: z.string(), periods: z.array(tariffPeriodSchema) }),
});
export type Arm = z.infer<typeof armSchema>;

/** Why a processor asks to cut power: the power_off reasons a processor decides. */
export const cutoffReasonSchema = stopReasonSchema.extract(["target_reached", "credit_exhausted", "terminal_offline", "fault"]);

/** What the cutoff processor asks of the control service. */
export const cutoffSchema = z.object({
  sessionId: z.string(),
  terminalId: z.string(),
  reason: cutoffReasonSchema,
  /** Reading time of the reading that decided it (for silence: of the last reading seen). */
  ts: wireTsSchema,
  /** When the processor decided, by the platform clock; for latency measurement. */
  decidedAt: boundedNumber(wireBounds.ts),
});
export type Cutoff = z.infer<typeof cutoffSchema>;

/**
 * A session's meter as the cutoff processor holds it, for the control service to bill from
 * (`<prefix>.ctl.meter.<sessionId>`, CONTROL stream). Published when the meter crosses a tariff
 * period boundary and when a cutoff is decided: the newest one, advanced in a straight line to the
 * session's end register, is the bill at reading resolution (docs/sessions-and-money.md).
 */
export const meterMessageSchema = z.object({
  sessionId: z.string(),
  terminalId: z.string(),
  /** Why it was published: `period` (a boundary crossed) or `cutoff` (the processor's last word). */
  at: z.enum(["period", "cutoff"]),
  meter: meterJsonSchema,
});
export type MeterMessage = z.infer<typeof meterMessageSchema>;

/** What the control service tells the fault processor about a terminal (KV bucket `<p>_terminals`). */
export const terminalInfoSchema = z.object({
  terminalId: z.string(),
  gatewayId: z.string(),
  franchiseeId: z.string(),
  regionId: z.string(),
  profile: z.object({
    onCurrentA: z.tuple([z.number(), z.number()]),
    offCurrentMaxA: z.number(),
    voltageV: z.tuple([z.number(), z.number()]),
    faultDebounceS: z.number(),
    faultClearS: z.number(),
  }),
  /**
   * Extension (1.1): in service, out of service for maintenance, or retired. Only a terminal in
   * service can raise terminal_offline; absent (entries written before 1.1) means in service.
   */
  status: z.enum(["active", "maintenance", "retired"]).optional(),
});
export type TerminalInfo = z.infer<typeof terminalInfoSchema>;

/** A fault change decided by the fault processor, for the control service to store and publish. */
export const faultChangeSchema = z.object({
  terminalId: z.string(),
  kind: z.string(),
  change: z.enum(["open", "repeat", "resolve"]),
  at: boundedNumber(wireBounds.ts),
  evidence: z.record(z.string(), z.unknown()).optional(),
  /** When the processor decided, by the platform clock; for latency measurement. */
  decidedAt: boundedNumber(wireBounds.ts).optional(),
});
export type FaultChange = z.infer<typeof faultChangeSchema>;
