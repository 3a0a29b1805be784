import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";

/** Every message a stream holds now, read with an ordered consumer (nothing durable left behind). */
export async function streamMessages<T = unknown>(nc: NatsConnection, stream: string, max = 100_000): Promise<{ subject: string; data: T; headers?: Record<string, string> }[]> {
  const js = jetstream(nc);
  const c = await js.consumers.get(stream);
  const info = await c.info(true);
  const total = info.num_pending;
  const out: { subject: string; data: T; headers?: Record<string, string> }[] = [];
  if (total === 0) return out;
  const iter = await c.consume();
  for await (const m of iter) {
    const headers: Record<string, string> = {};
    if (m.headers) for (const [k, v] of m.headers) headers[k] = v.join(",");
    out.push({ subject: m.subject, data: m.json<T>(), headers });
    if (out.length >= Math.min(total, max)) break;
  }
  await iter.close();
  return out;
}
