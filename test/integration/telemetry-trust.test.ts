import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform, terminalsSeen } from "../helpers/platform.ts";

// Issue 11, hole 1: a gateway speaks only for its own terminals, and a reading dated ahead does not
// hide the real ones. Each case is a reproduction from the issue, run against the whole platform:
// GX is a real gateway, registered with terminals of its own, that publishes for another's.
let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let user: string;

beforeAll(async () => {
  tp = await testPlatform();
  await seedFleet(tp, { terminals: ["TA3", "TB5", "TC7"] });
  const ok = (r: { status: number }) => expect(r.status).toBeLessThan(300);
  ok(await tp.api("PUT", "/v1/admin/gateways/GX", { regionId: "R1" }));
  ok(await tp.api("PUT", "/v1/admin/terminals/TX1", { qr: "qr-TX1", gatewayId: "GX", regionId: "R1", franchiseeId: "FR1" }));
  ok(await tp.api("PUT", "/v1/admin/gateways/GZ", { regionId: "R1" }));
  ok(await tp.api("PUT", "/v1/admin/terminals/TZ6", { qr: "qr-TZ6", gatewayId: "GZ", regionId: "R1", franchiseeId: "FR1" }));
  gw = await simGateway(tp, { TA3: {}, TB5: {}, TC7: {} }, { tickMs: 100 });
  user = await tp.token("U1", "user");
  ok(await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 10_000, reference: "r1" }));
  await until(async () => (await tp.api("GET", "/v1/me", undefined, user)).status === 200);
  await terminalsSeen(tp, gw);
});

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

async function charge(terminal: string, energyWh: number): Promise<string> {
  const r = await tp.api("POST", "/v1/charge-requests", { qr: `qr-${terminal}`, target: { energyWh }, payment: "prepaid" }, user);
  expect(r.status).toBe(201);
  const id = r.body.sessionId as string;
  await until(async () => (await tp.api("GET", `/v1/sessions/${id}`, undefined, user)).body.state === "active");
  return id;
}

async function completed(id: string) {
  return until(async () => {
    const r = await tp.api("GET", `/v1/sessions/${id}`, undefined, user);
    return r.body.state === "completed" ? r.body : null;
  }, 20_000);
}

/** Until the processors have read and acknowledged everything in the stream. */
async function processorsCaughtUp() {
  const jsm = await jetstreamManager(tp.p.nc);
  const s = tp.p.subjects;
  await until(async () => {
    const i = await jsm.consumers.info(s.streams.telemetry, s.consumer("processors"));
    return i.num_pending === 0 && i.num_ack_pending === 0;
  });
}

const forged = (over: object) => JSON.stringify({ ts: Date.now(), seq: 1_000_000, state: "on", currentA: 16.8, voltageV: 220, energyWh: 1, ...over });

describe("readings from a gateway that is not the terminal's", () => {
  it("do not move a session's meter: a register 50 kWh higher bills nothing of it", async () => {
    const id = await charge("TA3", 5);
    const t = gw.terminals.get("TA3")!;
    tp.p.nc.publish(tp.p.subjects.tel("GX", "TA3"), forged({ ts: Date.now() + 500, energyWh: t.energyWh + 50_000 }));
    const done = await completed(id);
    expect(done.stopReason).toBe("target_reached");
    expect(done.energyWh).toBeGreaterThanOrEqual(5);
    expect(done.energyWh).toBeLessThan(5.6);
    expect(done.feeCents).toBe(1);
  });

  it("do not stop another user's session for over-current, nor fault its terminal", async () => {
    const id = await charge("TB5", 4);
    tp.p.nc.publish(tp.p.subjects.tel("GX", "TB5"), forged({ currentA: 30, energyWh: gw.terminals.get("TB5")!.energyWh }));
    const done = await completed(id);
    expect(done.stopReason).toBe("target_reached");
    const { rows } = await tp.p.db.query("SELECT kind FROM faults WHERE terminal_id = 'TB5'");
    expect(rows).toEqual([]);
    // And the terminal takes the next charge.
    const next = await tp.api("POST", "/v1/charge-requests", { qr: "qr-TB5", target: { energyWh: 1 }, payment: "prepaid" }, user);
    expect(next.status).toBe(201);
    await completed(next.body.sessionId);
  });

  it("do not make an offline terminal of another gateway look available", async () => {
    tp.p.nc.publish(tp.p.subjects.tel("G1", "TZ6"), forged({ state: "off", currentA: 0 }));
    await processorsCaughtUp();
    expect(await tp.p.buckets.live.get("TZ6")).toBeNull();
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-TZ6", target: { energyWh: 1 }, payment: "prepaid" }, user);
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe("terminal_offline");
  });
});

describe("a reading dated ahead of its arrival", () => {
  it("does not hide the terminal's real readings from the cutoff", async () => {
    const id = await charge("TC7", 5);
    // From the terminal's own gateway, two minutes ahead (within the protocol's five), with the
    // register as it is: were it stepped, every real reading would be "older" for two minutes.
    tp.p.nc.publish(tp.p.subjects.tel("G1", "TC7"), forged({ ts: Date.now() + 120_000, energyWh: gw.terminals.get("TC7")!.energyWh }));
    const done = await completed(id);
    expect(done.stopReason).toBe("target_reached");
    expect(done.energyWh).toBeLessThan(5.6);
  });
});

describe("a reading dated ahead, within the bound", () => {
  it("does not keep the real readings out of the live entry (the terminal stays online)", async () => {
    // The relay is off (no session) and the entry says so: a reading saying "on" is written at once.
    await until(async () => (await tp.p.buckets.live.get("TC7"))?.json<{ state: string }>().state === "off");
    const written: number[] = [];
    const w = await tp.p.buckets.live.watch({ key: "TC7", include: "updates" });
    void (async () => {
      for await (const e of w) if (e.operation === "PUT") written.push(e.json<{ ts: number }>().ts);
    })();
    const ahead = Date.now() + 50_000;
    tp.p.nc.publish(tp.p.subjects.tel("G1", "TC7"), forged({ ts: ahead, state: "on", currentA: 16.8, energyWh: gw.terminals.get("TC7")!.energyWh }));
    // Written (the relay "changed"), then, the relay being off in truth, replaced by the next real
    // reading well before the 50 s are up.
    await until(async () => written.indexOf(ahead) >= 0 && written.slice(written.indexOf(ahead) + 1).some((ts) => ts < ahead));
    w.stop();
  });
});

describe("a reading the cutoff step cannot take", () => {
  it("is skipped alone: every other session is still cut at its target", async () => {
    // Schema-valid today (issue 11, hole 4): exact money cannot hold a register of 1e306 Wh.
    const a = await charge("TA3", 3);
    const b = await charge("TB5", 3);
    tp.p.nc.publish(tp.p.subjects.tel("G1", "TA3"), forged({ ts: Date.now() + 200, seq: 2_000_000, energyWh: 1e306 }));
    const [doneA, doneB] = await Promise.all([completed(a), completed(b)]);
    expect(doneB.stopReason).toBe("target_reached");
    expect(doneB.energyWh).toBeLessThan(3.6);
    // The terminal whose reading it was goes on from its next reading.
    expect(doneA.stopReason).toBe("target_reached");
    expect(doneA.energyWh).toBeLessThan(3.6);
  });
});
