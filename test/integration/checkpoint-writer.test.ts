import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkpointWriter } from "../../processors/internal.ts";
import { NATS_URL, testPrefix } from "../helpers/env.ts";
import { until } from "../helpers/platform.ts";

// The cutoff stage's checkpoint writer, on a real bucket: the newest record per terminal is what
// ends up stored, never an older one over a newer (also when a put fails and is retried after a
// newer one was given), and stored() resolves only once everything given before it is stored.
let nc: NatsConnection;
let kv: KV;
const bucket = `${testPrefix()}_ckpt`;

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  kv = await new Kvm(nc).create(bucket, { history: 1, max_bytes: 2 ** 20 });
});
afterAll(async () => {
  await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`).catch(() => {});
  await nc?.close();
});

/** The real bucket, with the first `n` puts of `key` refused (a NATS timeout, as in an election). */
function failingPuts(key: string, n: number): KV & { refused: number } {
  const k = Object.create(kv) as KV & { refused: number };
  k.refused = 0;
  k.put = (id, value, opts) => {
    if (id === key && k.refused < n) {
      k.refused++;
      return Promise.reject(new Error("timeout"));
    }
    return kv.put(id, value, opts);
  };
  return k;
}

const value = async (id: string) => {
  const e = await kv.get(id);
  return e && e.operation === "PUT" ? e.string() : null;
};

describe("the checkpoint writer", () => {
  it("stores the newest record of each terminal and a removal as a removal", async () => {
    const w = checkpointWriter(kv, pino({ level: "silent" }));
    for (let i = 1; i <= 50; i++) w.put("A", `a${i}`);
    w.put("B", "b1");
    w.put("C", "c1");
    w.delete("C");
    await w.stored();
    expect(await value("A")).toBe("a50");
    expect(await value("B")).toBe("b1");
    expect(await value("C")).toBeNull();
    await w.stop();
  });

  it("retries a refused put with the newest record, and stored() waits for it", async () => {
    const k = failingPuts("D", 3);
    const w = checkpointWriter(k, pino({ level: "silent" }), { retryMs: 20 });
    w.put("D", "d1");
    w.put("E", "e1");
    const first = w.stored();
    let firstDone = false;
    void first.then(() => (firstDone = true));
    // Refused once at least (polled each millisecond: the third refusal is 40 ms away, and then d1
    // is stored): the first record of D is not stored, so stored() has not resolved.
    await until(async () => k.refused >= 1, 1000, 1);
    expect(firstDone).toBe(false);
    w.put("D", "d2");
    await first;
    await w.stored();
    expect(k.refused).toBe(3);
    expect(await value("D")).toBe("d2");
    expect(await value("E")).toBe("e1");
    await w.stop();
  });

  it("refuses what it could not store once stopped: the batch is then redelivered, not acknowledged", async () => {
    const k = failingPuts("F", Number.POSITIVE_INFINITY);
    const w = checkpointWriter(k, pino({ level: "silent" }), { retryMs: 20, stopWaitMs: 200 });
    w.put("F", "f1");
    const waiting = w.stored();
    await w.stop();
    await expect(waiting).rejects.toThrow(/stopped/);
    await expect(w.stored()).rejects.toThrow(/stopped/);
  });
});
