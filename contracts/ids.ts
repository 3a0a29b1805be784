import { z } from "zod";

/** Ids travel as NATS subject tokens, hence no dots, spaces or wildcards (protocol: Identities). */
export const idPattern = /^[A-Za-z0-9_-]{1,64}$/;
export const idSchema = z.string().regex(idPattern, `must match ${idPattern.source}`);
export type Id = z.infer<typeof idSchema>;

/**
 * Text from outside, `min` to `max` characters. PostgreSQL's text cannot hold U+0000, and nothing a
 * person types needs it, so it is refused at the edge (400) rather than failing in a query (500).
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export const textSchema = (min: number, max: number) =>
  z
    .string()
    .min(min)
    .max(max)
    .regex(/^[^\u0000]*$/, "must not contain the NUL character (U+0000)")
    // A lone surrogate (half of a UTF-16 pair) is no character: PostgreSQL's jsonb refuses its
    // escape (the audit log stores the request's values as jsonb), so it is refused here.
    .refine((v) => !LONE_SURROGATE.test(v), "must be well-formed Unicode (no lone surrogate)");

export const qrSchema = textSchema(1, 512);

/** Epoch milliseconds, as every `ts` on the wire. */
export const tsSchema = z.number().int().nonnegative();
