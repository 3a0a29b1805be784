import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { followBucket } from "../../processors/internal.ts";
import { NATS_URL, testPrefix } from "../helpers/env.ts";
import { removeNatsState, until } from "../helpers/platform.ts";

const prefix = testPrefix();
let nc: NatsConnection;
let kv: KV;

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  kv = await new Kvm(nc).create(`${prefix}_follow`, { max_bytes: 1 << 20 });
});
afterAll(async () => {
  await nc?.close();
  await removeNatsState(prefix);
});

describe("following a bucket", () => {
  it("makes an ended watch again from the next revision: changes made meanwhile arrive, in order, none twice", async () => {
    await kv.put("a", "1");
    await kv.put("b", "1");
    // The real bucket, but every watch it makes is kept, so the test can end one as nats.js does
    // when it gives up on an ordered consumer after a long outage (the iterator just ends).
    const made: { stop(): void }[] = [];
    const watched = Object.assign(Object.create(kv) as KV, {
      watch: async (...a: Parameters<KV["watch"]>) => {
        const w = await kv.watch(...a);
        made.push(w);
        return w;
      },
    });
    const seen: string[] = [];
    const state = new Map<string, string>();
    const f = await followBucket(watched, {
      log: pino({ level: "silent" }),
      what: "test",
      retryMs: 300,
      onEntry: (e: KvWatchEntry) => {
        seen.push(`${e.operation}:${e.key}:${e.operation === "PUT" ? e.string() : ""}`);
        if (e.operation === "PUT") state.set(e.key, e.string());
        else state.delete(e.key);
      },
    });
    await until(async () => state.size === 2);
    made[0]!.stop();
    // While no watch runs: a change, a delete and a new key.
    await kv.put("a", "2");
    await kv.delete("b");
    await kv.put("c", "1");
    await until(async () => made.length === 2 && state.get("c") === "1");
    expect(Object.fromEntries(state)).toEqual({ a: "2", c: "1" });
    expect(seen).toEqual(["PUT:a:1", "PUT:b:1", "PUT:a:2", "DEL:b:", "PUT:c:1"]);
    // And it goes on following on the new watch.
    await kv.put("a", "3");
    await until(async () => state.get("a") === "3");
    f.stop();
    await f.done;
    await kv.put("a", "4");
    // A window, not a wait for something: a follow that had not stopped would watch again within its retryMs (300) and see a=4.
    await new Promise((r) => setTimeout(r, 300));
    expect(state.get("a")).toBe("3");
    expect(made).toHaveLength(2);
  });
});
