import { z } from "zod";

/** Ids travel as NATS subject tokens, hence no dots, spaces or wildcards (protocol: Identities). */
export const idPattern = /^[A-Za-z0-9_-]{1,64}$/;
export const idSchema = z.string().regex(idPattern, `must match ${idPattern.source}`);
export type Id = z.infer<typeof idSchema>;

export const qrSchema = z.string().min(1).max(512);

/** Epoch milliseconds, as every `ts` on the wire. */
export const tsSchema = z.number().int().nonnegative();
