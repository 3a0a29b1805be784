import { jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Arm, Cutoff, FaultChange } from "../../contracts/index.ts";
import { cutoffStage, faultStage, isOnline, readLive, startProcessorHost, type RunningProcessor } from "../../processors/index.ts";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// Issue 17: with 10,000 idle registered terminals around (each heard from, none in a session),
// the stages tick only the terminals whose deadline has come, and still catch a terminal going
// offline and a session going silent at their times. The stages take a fake clock; the stream's
// arrival times are real, so the fake clock starts at the real time and is moved by hand.
const IDLE = 10_000;
const OFFLINE_MS = 60_000;
const SILENCE_MS = 30_000;

let tp: TestPlatform;
let host: RunningProcessor;
let now = 0;
/**
 * The stages' reads of the fake clock. A tick reads it once as it begins and once per effect it
 * runs (two at most in the windows below), and ticks run one after another.
 */
const clockReads = { cutoff: 0, faults: 0 };
const clockOf = (stage: keyof typeof clockReads) => () => {
  clockReads[stage]++;
  return now;
};
/**
 * Waits until each stage has read the clock five more times (so at least one whole tick of each
 * ran at the time set, most often four), then until what they published has come back to the
 * test's subscriptions (a round trip on the same connection): what a fixed wait for "several ticks
 * at this time" hoped for.
 */
async function ticked(): Promise<void> {
  const from = { ...clockReads };
  await until(async () => clockReads.cutoff >= from.cutoff + 5 && clockReads.faults >= from.faults + 5, 10_000, 10);
  await tp.p.nc.flush();
}
const opened: FaultChange[] = [];
const cutoffs: Cutoff[] = [];

const reading = (ts: number, state = "off", energyWh = 10) => ({ ts, seq: 1, state, currentA: state === "on" ? 16.8 : 0, voltageV: 220, energyWh });

async function drained(durable: string) {
  const jsm = await jetstreamManager(tp.p.nc);
  await until(async () => {
    const i = await jsm.consumers.info(tp.p.subjects.streams.telemetry, durable);
    return i.num_pending === 0 && i.num_ack_pending === 0;
  }, 60_000);
}

beforeAll(async () => {
  // The arm below is written by hand, with no session behind it: the control service's repair of
  // the arms bucket must not remove it while the test runs.
  tp = await testPlatform({ ARMS_CHECK_MS: String(3_600_000) }, { parts: { cutoff: false, faults: false, writer: false } });
  await seedFleet(tp, { terminals: ["X", "Y", "Z"] });
  const { nc, subjects: s, buckets } = tp.p;
  // 10,000 more registered terminals, written straight into the registry bucket (as the control
  // service writes them), on the same gateway.
  const model = (await buckets.terminals.get("X"))!.json<Record<string, unknown>>();
  for (let i = 0; i < IDLE; i += 500)
    await Promise.all(Array.from({ length: 500 }, (_, j) => buckets.terminals.put(`I${i + j}`, JSON.stringify({ ...model, terminalId: `I${i + j}` }))));

  nc.subscribe(s.wild.faultChange, {
    callback: (_e, m) => {
      opened.push(m.json<FaultChange>());
    },
  });
  nc.subscribe(s.wild.cutoff, {
    callback: (_e, m) => {
      cutoffs.push(m.json<Cutoff>());
    },
  });

  now = Date.now();
  const log = pino({ level: "silent" });
  const registry = new Registry();
  const common = { nc, subjects: s, buckets, log, registry, tickMs: 50 };
  host = await startProcessorHost({
    nc,
    subjects: s,
    log,
    clock: () => now,
    durable: s.consumer("idle_fleet"),
    terminals: buckets.terminals,
    registry,
    stages: [
      (ctx) => cutoffStage({ ...common, clock: clockOf("cutoff"), silenceMs: SILENCE_MS }, ctx),
      (ctx) => faultStage({ ...common, clock: clockOf("faults"), offlineMs: OFFLINE_MS }, ctx),
    ],
  });
}, 120_000);

afterAll(async () => {
  await host?.stop();
  await tp?.[Symbol.asyncDispose]();
});

describe("10,000 idle terminals around", () => {
  it("an offline terminal and a silent session are caught at their times, and no idle terminal before its own", async () => {
    const { nc, subjects: s, buckets } = tp.p;
    // X and Y are heard first; the 10,000 idle terminals a little later (arrival: the stream's clock).
    nc.publish(s.tel("G1", "X"), JSON.stringify(reading(Date.now())));
    nc.publish(s.tel("G1", "Y"), JSON.stringify(reading(Date.now(), "on", 10)));
    await drained(s.consumer("idle_fleet"));
    const xSeen = (await until(async () => (await readLive(buckets.live, "X", { nc, subjects: s })) ?? null)).seenAt;
    const ySeen = (await readLive(buckets.live, "Y", { nc, subjects: s }))!.seenAt;
    // Real time, not a wait for something: the idle terminals' arrival (the stream's clock) is later by this much.
    await new Promise((r) => setTimeout(r, 1500));
    const ts = Date.now();
    for (let i = 0; i < IDLE; i += 1000)
      nc.publish(s.telBatch("G1"), JSON.stringify({ readings: Array.from({ length: 1000 }, (_, j) => ({ terminalId: `I${i + j}`, ...reading(ts) })) }));
    await drained(s.consumer("idle_fleet"));
    const idleSeen = (await until(async () => (await readLive(buckets.live, `I${IDLE - 1}`, { nc, subjects: s })) ?? null)).seenAt;
    expect(idleSeen).toBeGreaterThan(xSeen + 1000);

    // Y's session is armed at the fake clock's now (its silence counts from then, or its last reading).
    const arm: Arm = {
      sessionId: "S-idle-1",
      terminalId: "Y",
      gatewayId: "G1",
      startTs: ts - 5000,
      startWh: 10,
      target: { energyWh: 1000 },
      capCents: 100_000,
      capLookahead: false,
      tariff: { version: 1, timezone: "UTC", periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100, timeCentsPerHour: 0 }] },
    };
    now = Math.max(now, ySeen);
    const armedAt = now;
    await buckets.arms.put("Y", JSON.stringify(arm));
    await until(async () => (await buckets.meters.get("Y")) !== null);

    // Just before the silence deadline: nothing; at it: the cutoff, decided at that time.
    const silentAt = Math.max(armedAt, ySeen) + SILENCE_MS;
    now = silentAt - 1;
    await ticked();
    expect(cutoffs).toEqual([]);
    now = silentAt;
    const cut = await until(async () => cutoffs.find((c) => c.sessionId === "S-idle-1"));
    expect(cut).toMatchObject({ terminalId: "Y", reason: "terminal_offline", decidedAt: silentAt });

    // X: just before its offline deadline nothing opens; at it, X's offline fault and nobody else's.
    now = xSeen + OFFLINE_MS - 1;
    await ticked();
    expect(opened.filter((c) => c.kind === "terminal_offline")).toEqual([]);
    now = xSeen + OFFLINE_MS;
    const off = await until(async () => opened.find((c) => c.terminalId === "X" && c.kind === "terminal_offline"));
    expect(off.at).toBe(xSeen + OFFLINE_MS);
    await ticked();
    // Y is offline too by now (heard at the same time as X); the idle ones are not due yet.
    expect(opened.filter((c) => c.kind === "terminal_offline").map((c) => c.terminalId).sort()).toEqual(ySeen + OFFLINE_MS <= now ? ["X", "Y"] : ["X"]);

    // The idle terminals' own deadline: all 10,000 open then.
    now = idleSeen + OFFLINE_MS;
    await until(async () => opened.filter((c) => c.kind === "terminal_offline" && c.terminalId.startsWith("I")).length === IDLE, 60_000);
  }, 180_000);

  it("writes a steady terminal's live entry once, and answers its fresh 'seen at' from memory", async () => {
    const { nc, subjects: s, buckets } = tp.p;
    const writes: number[] = [];
    const w = await buckets.live.watch({ key: "Z", include: "updates" });
    void (async () => {
      for await (const e of w) if (e.operation === "PUT") writes.push(e.json<{ seenAt: number }>().seenAt);
    })();
    // Six seconds of one reading a second, the relay off throughout (the old writer rewrote the
    // entry every 2.5-5 s).
    let last = 0;
    for (let i = 0; i < 7; i++) {
      nc.publish(s.tel("G1", "Z"), JSON.stringify({ ...reading(Date.now()), seq: i + 1 }));
      await nc.flush();
      // Real time, not a wait for something: the readings arrive a second apart (the stream's clock).
      if (i < 6) await new Promise((r) => setTimeout(r, 1000));
    }
    await drained(s.consumer("idle_fleet"));
    await until(async () => {
      const l = await readLive(buckets.live, "Z", { nc, subjects: s });
      last = l?.seenAt ?? 0;
      return writes.length >= 1 && last > writes[0]! + 5000;
    });
    w.stop();
    expect(writes).toHaveLength(1);
    // The bucket alone is as old as the first reading; the answer is the newest.
    const entry = (await readLive(buckets.live, "Z"))!;
    expect(entry.seenAt).toBe(writes[0]);
    expect(isOnline(await readLive(buckets.live, "Z", { nc, subjects: s }), entry.seenAt + OFFLINE_MS + 3000, OFFLINE_MS)).toBe(true);
    expect(isOnline(entry, entry.seenAt + OFFLINE_MS + 3000, OFFLINE_MS)).toBe(false);
  }, 60_000);
});
