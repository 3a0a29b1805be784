import { jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TelemetryItem } from "../../ingest/index.ts";
import { startProcessorHost, type Stage, type StageContext } from "../../processors/index.ts";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// The host that feeds several stages from one consumer: each stage sees every reading once and in
// order, a failing stage is retried alone (the other is not run again), and the batch is
// acknowledged only when both are done.
let tp: TestPlatform;

beforeAll(async () => {
  tp = await testPlatform({}, { parts: { cutoff: false, faults: false, writer: false } });
  // Each test its own terminals: every host reads the stream from its start.
  await seedFleet(tp, { terminals: ["T0", "T1", "T2", "T3", "A0", "A1", "A2", "A3", "B0", "B1", "B2"] });
});
afterAll(async () => {
  await tp?.[Symbol.asyncDispose]();
});

function recorder(name: string, failFirst = 0): Stage & { seen: string[]; attempts: number } {
  let failures = failFirst;
  const st = {
    seen: [] as string[],
    attempts: 0,
    async handle(items: TelemetryItem[]) {
      st.attempts++;
      if (failures > 0) {
        failures--;
        throw new Error(`${name} fails on purpose`);
      }
      for (const it of items) st.seen.push(`${it.terminalId}@${it.reading.seq}`);
    },
    async stop() {},
  };
  return st;
}

describe("the processor host", () => {
  it("runs every stage once per reading, retries only the stage that failed, and acknowledges after both", async () => {
    const { nc, subjects: s } = tp.p;
    const steady = recorder("steady");
    const flaky = recorder("flaky", 2);
    const durable = s.consumer("host_test");
    const host = await startProcessorHost({
      nc,
      subjects: s,
      log: pino({ level: "silent" }),
      clock: Date.now,
      durable,
      terminals: tp.p.buckets.terminals,
      stages: [async () => steady, async () => flaky],
    });
    try {
      const ts = Date.now() - 60_000;
      const want: string[] = [];
      for (let i = 0; i < 20; i++) {
        nc.publish(s.tel("G1", `T${i % 4}`), JSON.stringify({ ts: ts + i * 1000, seq: i, state: "off", currentA: 0, voltageV: 220, energyWh: 1 }));
        want.push(`T${i % 4}@${i}`);
      }
      // A bad reading is skipped by the stages (dead-lettering it is the writer's job).
      nc.publish(s.tel("G1", "T0"), JSON.stringify({ ts, seq: -1 }));
      await until(async () => flaky.seen.length === want.length, 20_000);
      expect(steady.seen).toEqual(want);
      expect(flaky.seen).toEqual(want);
      // The flaky stage was called again for the batch it failed; the steady one was not.
      expect(flaky.attempts).toBeGreaterThan(steady.attempts);
      const jsm = await jetstreamManager(nc);
      await until(async () => (await jsm.consumers.info(s.streams.telemetry, durable)).num_ack_pending === 0);
      const info = await jsm.consumers.info(s.streams.telemetry, durable);
      expect(info.num_pending).toBe(0);
      expect(info.num_redelivered).toBe(0);
    } finally {
      await host.stop();
    }
  });

  it("steps only readings of registered terminals from their registered gateway, not dated far ahead, and follows a re-homing", async () => {
    const { nc, subjects: s } = tp.p;
    expect((await tp.api("PUT", "/v1/admin/gateways/G2", { regionId: "R1" }, tp.admin)).status).toBe(200);
    const all = recorder("seen");
    // This test's terminals only (the stream also holds the other tests' readings).
    const seen = () => all.seen.filter((x) => x.startsWith("A"));
    let ctx!: StageContext;
    const registry = new Registry();
    const host = await startProcessorHost({
      nc,
      subjects: s,
      log: pino({ level: "silent" }),
      clock: Date.now,
      durable: s.consumer("host_trust"),
      terminals: tp.p.buckets.terminals,
      registry,
      stages: [
        async (c) => {
          ctx = c;
          return all;
        },
      ],
    });
    try {
      const now = Date.now();
      const reading = (seq: number, ts = now) => JSON.stringify({ ts: ts + seq, seq, state: "off", currentA: 0, voltageV: 220, energyWh: 1 });
      nc.publish(s.tel("G1", "A0"), reading(1));
      nc.publish(s.tel("G2", "A1"), reading(2)); // a real gateway, not T1's
      nc.publish(s.tel("G1", "AZ9"), reading(3)); // not registered
      nc.publish(s.tel("G1", "A2"), reading(4, now + 120_000)); // two minutes ahead
      nc.publish(s.telBatch("G2"), JSON.stringify({ readings: [{ terminalId: "A3", ...JSON.parse(reading(5)) }] }));
      nc.publish(s.tel("G1", "A0"), reading(6));
      await until(async () => seen().includes("A0@6"));
      expect(seen()).toEqual(["A0@1", "A0@6"]);
      const ignored = await registry.getSingleMetric("vend_processor_readings_ignored_total")!.get();
      const by = Object.fromEntries(ignored.values.map((v) => [v.labels.reason, v.value]));
      expect(by).toEqual({ wrong_gateway: 2, unknown_terminal: 1, future_ts: 1 });

      // T3 moves to G2: its readings count from there, and no longer from G1.
      const moved = await tp.api("PUT", "/v1/admin/terminals/A3", { qr: "qr-A3", gatewayId: "G2", regionId: "R1", franchiseeId: "FR1" }, tp.admin);
      expect(moved.status).toBe(200);
      await until(async () => ctx.terminal("A3").info?.gatewayId === "G2");
      nc.publish(s.tel("G1", "A3"), reading(7));
      nc.publish(s.tel("G2", "A3"), reading(8));
      nc.publish(s.tel("G1", "A0"), reading(9));
      await until(async () => seen().includes("A0@9"));
      expect(seen()).toEqual(["A0@1", "A0@6", "A3@8", "A0@9"]);
    } finally {
      await host.stop();
    }
  });

  it("skips the reading a stage keeps failing on, and steps every other terminal's", async () => {
    const { nc, subjects: s } = tp.p;
    const seen: string[] = [];
    // Fails on B1's seq 13 whenever it is in the readings handed over (and then keeps none of them).
    const picky: Stage = {
      name: "picky",
      async handle(items) {
        if (items.some((it) => it.terminalId === "B1" && it.reading.seq === 13)) throw new Error("cannot take B1@13");
        for (const it of items) if (it.terminalId.startsWith("B")) seen.push(`${it.terminalId}@${it.reading.seq}`);
      },
      async stop() {},
    };
    const registry = new Registry();
    const host = await startProcessorHost({
      nc,
      subjects: s,
      log: pino({ level: "silent" }),
      clock: Date.now,
      durable: s.consumer("host_isolate"),
      terminals: tp.p.buckets.terminals,
      registry,
      retryDelayMs: 100,
      stages: [async () => picky],
    });
    try {
      const ts = Date.now() - 60_000;
      const send = (i: number, t: string) => nc.publish(s.tel("G1", t), JSON.stringify({ ts: ts + i * 1000, seq: i, state: "off", currentA: 0, voltageV: 220, energyWh: 1 }));
      for (let i = 0; i < 20; i++) send(i, `B${i % 3}`);
      await until(async () => seen.includes("B0@18") && seen.includes("B2@17"));
      // Every reading of the other terminals was stepped, each terminal's in order.
      for (const t of ["B0", "B2"]) {
        const want = [...Array(20).keys()].filter((i) => `B${i % 3}` === t).map((i) => `${t}@${i}`);
        expect(seen.filter((x) => x.startsWith(`${t}@`))).toEqual(want);
      }
      expect(seen).not.toContain("B1@13");
      // Counted once its own tries are spent (the other terminals' shares were stepped before).
      await until(async () => {
        const skipped = await registry.getSingleMetric("vend_processor_readings_skipped_total")!.get();
        return (skipped.values.find((v) => v.labels.stage === "picky")?.value ?? 0) >= 1;
      });
      // B1 itself is not blocked: its next reading is stepped.
      send(21, "B1");
      await until(async () => seen.includes("B1@21"));
    } finally {
      await host.stop();
    }
  });

  it("refuses to start and stops the stages made so far when one cannot be made", async () => {
    const { nc, subjects: s } = tp.p;
    let stopped = 0;
    const ok: Stage = { handle: async () => {}, stop: async () => void stopped++ };
    await expect(
      startProcessorHost({
        nc,
        subjects: s,
        log: pino({ level: "silent" }),
        clock: Date.now,
        durable: s.consumer("host_test_bad"),
        terminals: tp.p.buckets.terminals,
        stages: [
          async () => ok,
          async () => {
            throw new Error("no stage today");
          },
        ],
      }),
    ).rejects.toThrow("no stage today");
    expect(stopped).toBe(1);
  });
});
