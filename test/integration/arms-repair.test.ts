import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Arm } from "../../contracts/index.ts";
import { openBuckets } from "../../ingest/index.ts";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// The window between a session's state and its arm: the arm is written before the state that
// says "active" commits, so a failed arm leaves no active session behind; and the arms check (its
// own round, every ARMS_CHECK_MS) repairs what no transition sees: an arm lost from the bucket,
// an arm left by a session that is not powered.

let tp: TestPlatform;
let now = 1_795_478_400_000;
const clock = () => now;

beforeAll(async () => {
  tp = await testPlatform(
    { CONTROL_TICK_MS: "3600000", ARMS_CHECK_MS: "300" },
    { clock, parts: { cutoff: false, faults: false, writer: false, backup: false } },
  );
  await seedFleet(tp, { terminals: ["T1", "T2", "T3", "T4", "T5", "T6"] });
  expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1_000_000, reference: "seed" })).status).toBe(201);
});
afterAll(async () => tp?.[Symbol.asyncDispose]());

async function sessionOn(terminalId: string): Promise<string> {
  now += 1000;
  // Seen: a reading in the telemetry stream (its arrival, real time, is after this clock's now).
  await jetstream(tp.p.nc).publish(tp.p.subjects.tel("G1", terminalId), JSON.stringify({ ts: now, seq: 1, state: "off", currentA: 0, voltageV: 220, energyWh: 500 }));
  const s = await tp.p.control!.sessions.requestCharge("U1", { qr: `qr-${terminalId}`, target: { energyWh: 1000 }, payment: "prepaid" });
  await tp.p.control!.sessions.onEvent("G1", terminalId, { type: "handshake_result", sessionId: s.sessionId, terminalCode: terminalId, match: true, ts: now });
  return s.sessionId;
}

const powerOnAck = (terminalId: string, sessionId: string) =>
  tp.p.control!.sessions.onEvent("G1", terminalId, { type: "power_on_ack", sessionId, energyWh: 500.25, ts: now + 100 });

async function armOf(terminalId: string): Promise<Arm | null> {
  const e = await tp.p.buckets.arms.get(terminalId);
  return e && e.operation === "PUT" && e.length > 0 ? (e.json() as Arm) : null;
}

const stateOf = async (sessionId: string) =>
  (await tp.p.db.query<{ state: string }>("SELECT state FROM sessions WHERE session_id = $1::text", [sessionId])).rows[0]!.state;

describe("the arm is written before the state", () => {
  it("a power_on_ack whose arm cannot be written leaves the session unpowered in the books; its redelivery arms it", async () => {
    const sessionId = await sessionOn("T1");
    // The arms bucket is gone (a NATS store lost): writing the arm fails.
    const jsm = await jetstreamManager(tp.p.nc);
    await jsm.streams.delete(`KV_${tp.p.subjects.buckets.arms}`);
    try {
      await expect(powerOnAck("T1", sessionId)).rejects.toThrow();
      // Not active: nothing says the terminal is guarded when it is not (the consumer redelivers the event).
      expect(await stateOf(sessionId)).toBe("authorizing");
    } finally {
      await openBuckets(tp.p.nc, tp.p.subjects);
    }
    await powerOnAck("T1", sessionId);
    expect(await stateOf(sessionId)).toBe("active");
    expect(await armOf("T1")).toMatchObject({ sessionId, startTs: now + 100, startWh: 500.25 });
  });
});

describe("a late power_off_ack of the terminal's previous session", () => {
  it("arriving through the events stream after the next session started, leaves the next one armed", async () => {
    const x = await sessionOn("T6");
    await powerOnAck("T6", x);
    const offAck = { type: "power_off_ack", sessionId: x, energyWh: 501, ts: now + 200 };
    await tp.p.control!.sessions.onEvent("G1", "T6", offAck as never);
    expect(await stateOf(x)).toBe("completed");
    const y = await sessionOn("T6");
    await powerOnAck("T6", y);
    expect((await armOf("T6"))?.sessionId).toBe(y);
    const revision = (await tp.p.buckets.arms.get("T6"))!.revision;

    // The gateway (or JetStream, after a crash) brings X's acknowledgement again.
    const js = jetstream(tp.p.nc);
    const { seq } = await js.publish(tp.p.subjects.evt("G1", "T6"), JSON.stringify(offAck));
    const jsm = await jetstreamManager(tp.p.nc);
    await until(async () => {
      const ci = await jsm.consumers.info(tp.p.subjects.streams.events, tp.p.subjects.consumer("control_events"));
      return ci.ack_floor.stream_seq >= seq;
    });
    expect(await stateOf(y)).toBe("active");
    // The very entry Y was armed with: not deleted and put back by the arms check meanwhile.
    const e = (await tp.p.buckets.arms.get("T6"))!;
    expect(e.operation).toBe("PUT");
    expect(e.revision).toBe(revision);
  });
});

describe("the arms check", () => {
  it("arms a powered session whose arm was lost, from its own power-on point, within its round", async () => {
    const sessionId = await sessionOn("T2");
    await powerOnAck("T2", sessionId);
    const armed = await armOf("T2");
    expect(armed?.sessionId).toBe(sessionId);
    // Lost behind the service's back (an older instance's unconditional delete, a restored store).
    await tp.p.buckets.arms.delete("T2");
    const again = await until(() => armOf("T2"), 10_000);
    expect(again).toEqual(armed);
  });

  it("arms a powered session over another session's arm", async () => {
    const sessionId = await sessionOn("T3");
    await powerOnAck("T3", sessionId);
    const armed = (await armOf("T3"))!;
    await tp.p.buckets.arms.put("T3", JSON.stringify({ ...armed, sessionId: "S-someone-else" }));
    expect(await until(async () => (await armOf("T3"))?.sessionId === sessionId, 10_000)).toBe(true);
  });

  it("removes arms of sessions that ended, never started, or do not exist, and leaves a powered one's", async () => {
    // T4: a session that ended; its arm comes back (a write that landed late).
    const ended = await sessionOn("T4");
    await powerOnAck("T4", ended);
    const arm = (await armOf("T4"))!;
    await tp.p.control!.sessions.onEvent("G1", "T4", { type: "power_off_ack", sessionId: ended, energyWh: 501, ts: now + 200 });
    expect(await stateOf(ended)).toBe("completed");
    expect(await armOf("T4")).toBeNull();
    await tp.p.buckets.arms.put("T4", JSON.stringify(arm));
    // T5: an arm of no session at all, and one that is not even an arm.
    await tp.p.buckets.arms.put("T5", JSON.stringify({ ...arm, sessionId: "S-unknown", terminalId: "T5" }));
    await tp.p.buckets.arms.put("T9", "not json");

    await until(async () => (await armOf("T4")) === null && (await armOf("T5")) === null && (await tp.p.buckets.arms.get("T9"))?.operation === "DEL", 10_000);
    // The powered sessions of the tests before keep theirs.
    expect((await armOf("T2"))?.sessionId).toBeDefined();
    expect((await armOf("T3"))?.sessionId).toBeDefined();
  });
});
