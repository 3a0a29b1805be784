import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { streamMessages } from "../helpers/streams.ts";

// Issue 11, hole 6: readings of terminals that are not registered grow no state in the processors:
// no live entry, no per-second fault state, no terminal_offline fault when they fall silent.
let tp: TestPlatform;

beforeAll(async () => {
  tp = await testPlatform({ TERMINAL_OFFLINE_S: "2" });
  await seedFleet(tp, { terminals: ["T1"] });
});

afterAll(async () => {
  await tp?.[Symbol.asyncDispose]();
});

describe("a batch of 5,000 unknown terminal ids", () => {
  it("leaves no live entry, no fault state and no offline fault behind", async () => {
    const { nc, subjects: s } = tp.p;
    const ts = Date.now();
    const reading = { ts, seq: 1, state: "off", currentA: 0, voltageV: 220, energyWh: 10 };
    const readings = Array.from({ length: 5000 }, (_, i) => ({ terminalId: `U${i}`, ...reading }));
    // T1 is registered on G1: it is heard once, then falls silent (the control case).
    nc.publish(s.telBatch("G1"), JSON.stringify({ readings: [{ terminalId: "T1", ...reading }, ...readings] }));

    const jsm = await jetstreamManager(nc);
    await until(async () => {
      const i = await jsm.consumers.info(s.streams.telemetry, s.consumer("processors"));
      return i.num_pending === 0 && i.num_ack_pending === 0;
    });
    await until(async () => (await tp.p.buckets.live.get("T1")) !== null);
    // T1's silence is noticed: the fault stage's ticks have run past the offline time.
    await until(async () => (await tp.p.db.query("SELECT 1 FROM faults WHERE terminal_id = 'T1' AND kind = 'terminal_offline'")).rowCount === 1);

    const live: string[] = [];
    for await (const k of await tp.p.buckets.live.keys()) live.push(k);
    expect(live).toEqual(["T1"]);
    const faultChanges = await streamMessages<{ terminalId: string }>(nc, s.streams.control);
    expect(faultChanges.map((m) => m.data.terminalId).filter((t) => t !== "T1")).toEqual([]);
    const { rows } = await tp.p.db.query("SELECT count(*)::int AS n FROM faults WHERE terminal_id <> 'T1'");
    expect(rows[0].n).toBe(0);
  });
});
