import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";

/**
 * Every message a stream holds now, read with an ordered consumer (nothing durable left behind).
 * Stops at the count the stream reported, or after a second without a message.
 */
export async function streamMessages<T = unknown>(nc: NatsConnection, stream: string, max = 100_000): Promise<{ subject: string; data: T; headers?: Record<string, string> }[]> {
  const js = jetstream(nc);
  const c = await js.consumers.get(stream);
  const info = await c.info(true);
  const total = Math.min(info.num_pending, max);
  const out: { subject: string; data: T; headers?: Record<string, string> }[] = [];
  if (total === 0) return out;
  const iter = await c.consume();
  let idle: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(() => void iter.close(), 1000);
  };
  arm();
  for await (const m of iter) {
    arm();
    const headers: Record<string, string> = {};
    if (m.headers) for (const [k, v] of m.headers) headers[k] = v.join(",");
    out.push({ subject: m.subject, data: m.json<T>(), headers });
    if (out.length >= total) break;
  }
  clearTimeout(idle);
  await iter.close();
  return out;
}
