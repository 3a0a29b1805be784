import { z } from "zod";

/**
 * The largest value each number of a wire message may take: what a meter or terminal can report,
 * chosen so every accepted value fits its database column and the exact-money code (integer mWh
 * below 2^53) without overflow. Published in docs/protocol-implementation.md; the lower bound is 0.
 */
export const wireBounds = {
  /** Register: 10^12 Wh (a 9-digit kWh register with 3 decimals); 10^15 mWh stays below 2^53. */
  energyWh: 1e12,
  /** 1000 A: above any charging post; `real` holds it. */
  currentA: 1000,
  /** 2000 V: above any DC charger. */
  voltageV: 2000,
  /** currentA × voltageV at their maxima, so the V×I written for a missing powerW is bounded too. */
  powerW: 2e6,
  /** 2^53 − 1: exact in JavaScript and within the `bigint` column. */
  seq: Number.MAX_SAFE_INTEGER,
  /** 9999-12-31T23:59:59.999Z in epoch ms: a valid JavaScript Date and `timestamptz`. */
  ts: 253_402_300_799_999,
  /** A terminal's own stop: the register's maximum. */
  limitWh: 1e12,
  /** A terminal's own stop: 2^31 − 1 s, a signed 32-bit counter of seconds (68 years). */
  limitS: 2_147_483_647,
} as const;

/**
 * Smallest non-zero magnitude a meter quantity keeps where it is stored (`real` columns). A
 * smaller non-zero value is noise that a `real` cannot hold (below 1.4e-45 PostgreSQL refuses
 * it), so the writer stores it as 0.
 */
export const meterResolution = 1e-6;

/**
 * A number between 0 and `max` inclusive (JSON never carries NaN or Infinity, and zod refuses them).
 * `int` also requires a whole number.
 */
export function boundedNumber(max: number, o: { int?: boolean } = {}) {
  const n = o.int ? z.number().int() : z.number();
  return n.min(0).max(max);
}

export const energyWhSchema = boundedNumber(wireBounds.energyWh);
export const wireTsSchema = boundedNumber(wireBounds.ts, { int: true });

/**
 * A string a terminal echoes back (session ids, codes): bounded, and without NUL, which
 * PostgreSQL's text cannot hold (an insert or lookup with one fails on every retry).
 */
export const wireTextSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^\u0000]*$/, "must not contain NUL");
