import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assignPartitions, partitionOf, runPartitionLeases, type Acquired, type PartitionLeases } from "../../processors/index.ts";
import { NATS_URL, rand } from "../helpers/env.ts";
import { until } from "../helpers/platform.ts";

// The leases alone, in-process on the real server: who steps which partition, when, and never two
// at once. Each "partition" records when it runs; the intervals of one partition must not overlap.
const COUNT = 6;
const LEASE_MS = 1500;
let nc: NatsConnection;
let kv: KV;
const bucket = `vt_leases_${rand()}`;
const log = pino({ level: "error" });
const runs: { k: number; who: string; how: Acquired; from: number; to: number | null }[] = [];

function instance(who: string, on: KV = kv): Promise<PartitionLeases> {
  return runPartitionLeases({
    kv: on,
    count: COUNT,
    instanceId: who,
    leaseMs: LEASE_MS,
    log,
    async start(k, how) {
      const run = { k, who, how, from: performance.now(), to: null as number | null };
      runs.push(run);
      return {
        async stop() {
          // A drain takes a moment: the next owner must wait for it.
          await new Promise((r) => setTimeout(r, 100));
          run.to = performance.now();
        },
      };
    },
  });
}

const noOverlap = () => {
  for (let k = 0; k < COUNT; k++) {
    const mine = runs.filter((r) => r.k === k).sort((a, b) => a.from - b.from);
    for (let i = 1; i < mine.length; i++) expect(mine[i - 1]!.to, `partition ${k} stepped by two at once`).not.toBeNull();
    for (let i = 1; i < mine.length; i++) expect(mine[i]!.from).toBeGreaterThanOrEqual(mine[i - 1]!.to!);
  }
};
const running = () => runs.filter((r) => r.to === null);

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  kv = await new Kvm(nc).create(bucket, { history: 1 });
});
afterAll(async () => {
  await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`).catch(() => {});
  await nc?.close();
});

describe("partition leases", () => {
  it("partitions by gateway are stable and spread; the assignment is even and the same for everyone", () => {
    expect(partitionOf("G1", 8)).toBe(partitionOf("G1", 8));
    const seen = new Set(Array.from({ length: 200 }, (_, i) => partitionOf(`GW${i}`, 8)));
    expect(seen.size).toBe(8);
    const a = assignPartitions(["b", "a", "c"], 7);
    expect(a).toEqual(assignPartitions(["c", "b", "a"], 7));
    expect([...a.values()].map((l) => l.length).sort()).toEqual([2, 2, 3]);
    expect(partitionOf("anything", 1)).toBe(0);
  });

  it("one takes all, a joiner is handed its share without overlap, a dead one's share is taken over after the lease, a clean stop hands over at once", async () => {
    const a = await instance("a");
    expect(a.owned().sort()).toEqual([0, 1, 2, 3, 4, 5]);
    const b = await instance("b");
    await until(async () => a.owned().length === 3 && b.owned().length === 3 && running().length === COUNT, 15_000, 50);
    expect(runs.filter((r) => r.who === "b").every((r) => r.how === "clean")).toBe(true);
    noOverlap();

    // "c" is cut off from NATS (its own connection closed): no release; it fences itself (stops
    // its partitions) before the lease runs out, and the others take them over after it.
    const ncC = await connect({ servers: NATS_URL });
    const c = await instance("c", await new Kvm(ncC).open(bucket));
    await until(async () => a.owned().length === 2 && b.owned().length === 2 && c.owned().length === 2, 15_000, 50);
    const cParts = c.owned();
    const frozenAt = performance.now();
    await ncC.close();
    await until(async () => a.owned().length + b.owned().length === COUNT, 15_000, 50);
    const took = performance.now() - frozenAt;
    expect(took).toBeGreaterThanOrEqual(LEASE_MS * 0.6);
    const taken = runs.filter((r) => cParts.includes(r.k) && r.who !== "c" && r.from > frozenAt);
    expect(taken.map((r) => r.how)).toEqual(cParts.map(() => "takeover"));

    // A clean stop of b: a takes its partitions at the next round (no lease to wait out).
    const stopAt = performance.now();
    await b.stop();
    await until(async () => a.owned().length === COUNT, 5_000, 20);
    expect(performance.now() - stopAt).toBeLessThan(LEASE_MS);
    await a.stop();
    await c.stop();
    // Every run ended, c's by fencing before the others took over, and none overlapped another of its partition's.
    for (const r of runs) expect(r.to).not.toBeNull();
    noOverlap();
  }, 60_000);
});

