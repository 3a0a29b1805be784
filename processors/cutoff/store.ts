import type { KV } from "@nats-io/kv";
import { kvFirstOf } from "../../ingest/index.ts";
import { z } from "zod";
import { cutoffReasonSchema, meterFromJson, meterJsonSchema, meterToJson, type Cutoff, type Meter } from "../../contracts/index.ts";

/** The processor's per-terminal checkpoint, as stored in the meters bucket under the terminalId. */
const recordSchema = z.object({
  meter: meterJsonSchema,
  // The cutoff stage decides all but a fault (the fault stage's).
  cutoff: cutoffReasonSchema.exclude(["fault"]).nullable(),
  /** The durable of the processor that wrote it: a partitioned instance restores only its own. */
  owner: z.string().optional(),
});

export interface MeterRecord {
  meter: Meter;
  cutoff: Cutoff["reason"] | null;
  owner?: string;
}

export function encodeMeterRecord(r: MeterRecord): string {
  return JSON.stringify({ meter: meterToJson(r.meter), cutoff: r.cutoff, owner: r.owner });
}

export function decodeMeterRecord(data: Uint8Array | string): MeterRecord {
  const raw = typeof data === "string" ? data : new TextDecoder().decode(data);
  const r = recordSchema.parse(JSON.parse(raw));
  return { meter: meterFromJson(r.meter), cutoff: r.cutoff, ...(r.owner ? { owner: r.owner } : {}) };
}

/** Reads a terminal's checkpointed meter (the control service bills from it). */
export async function readMeter(kv: KV, terminalId: string): Promise<MeterRecord | null> {
  const e = await kv.get(terminalId);
  if (!e || e.operation !== "PUT" || e.length === 0) return null;
  return decodeMeterRecord(e.value);
}

export async function loadAllMeters(kv: KV): Promise<Map<string, MeterRecord>> {
  const out = new Map<string, MeterRecord>();
  const keys: string[] = [];
  // The listing's consumer may be placed on a server that just died (ingest/first-of.ts).
  const listing = await kvFirstOf(() => kv.keys());
  for await (const k of listing) keys.push(k);
  await Promise.all(
    keys.map(async (k) => {
      const r = await readMeter(kv, k);
      if (r) out.set(k, r);
    }),
  );
  return out;
}
