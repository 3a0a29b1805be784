import { jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TelemetryItem } from "../../ingest/index.ts";
import { startProcessorHost, type Stage } from "../../processors/index.ts";
import { testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// The host that feeds several stages from one consumer: each stage sees every reading once and in
// order, a failing stage is retried alone (the other is not run again), and the batch is
// acknowledged only when both are done.
let tp: TestPlatform;

beforeAll(async () => {
  tp = await testPlatform({}, { parts: { cutoff: false, faults: false, writer: false } });
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
