import { DiscardPolicy, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform, terminalsSeen } from "../helpers/platform.ts";
import { streamMessages } from "../helpers/streams.ts";

// Issue 11, "effects only after they are durable": a stage keeps a terminal's new state only once
// its effects are stored. Here the CONTROL stream refuses every new message (full, discarding
// new) when the cutoff is decided, so its first publishes fail; once the stream takes messages
// again, the cutoff must still reach it, from the readings being retried.
let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let user: string;

beforeAll(async () => {
  tp = await testPlatform();
  await seedFleet(tp, { terminals: ["T1", "T2"] });
  gw = await simGateway(tp, { T1: { limits: false }, T2: { limits: false } }, { tickMs: 100 }); // the cloud cuts, not the terminal's own limit: the test is about the cutoff's publish
  user = await tp.token("U1", "user");
  expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 10_000, reference: "r1" })).status).toBe(201);
  await until(async () => (await tp.api("GET", "/v1/me", undefined, user)).status === 200);
  await terminalsSeen(tp, gw);
});

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

/** Makes the CONTROL stream refuse new messages until the returned function is called. */
async function refuseControlMessages(): Promise<() => Promise<void>> {
  const jsm = await jetstreamManager(tp.p.nc);
  const name = tp.p.subjects.streams.control;
  const info = await jsm.streams.info(name);
  const before = info.config;
  await jsm.streams.update(name, { ...before, max_msgs: Math.max(1, info.state.messages), discard: DiscardPolicy.New });
  if (info.state.messages === 0) await tp.p.nc.request(`${tp.p.subjects.prefix}.ctl.filler`, "{}");
  return async () => {
    await jsm.streams.update(name, { ...before });
  };
}

/** Every cutoff published for a terminal, stored or not (a core subscription sees refused ones too). */
function attempts(terminal: string): { reasons: string[]; stop(): void } {
  const sub = tp.p.nc.subscribe(tp.p.subjects.cutoff(terminal));
  const reasons: string[] = [];
  void (async () => {
    for await (const m of sub) reasons.push(m.json<{ reason: string }>().reason);
  })();
  return { reasons, stop: () => sub.unsubscribe() };
}

async function completed(id: string) {
  return until(async () => {
    const r = await tp.api("GET", `/v1/sessions/${id}`, undefined, user);
    return r.body.state === "completed" ? r.body : null;
  }, 20_000);
}

async function storedCutoffs(sessionId: string) {
  const all = await streamMessages<{ sessionId: string; reason: string }>(tp.p.nc, tp.p.subjects.streams.control);
  // Cutoffs only: the CONTROL stream carries the session's meter messages too.
  return all.filter((m) => m.subject.startsWith(`${tp.p.subjects.prefix}.ctl.cutoff.`) && m.data.sessionId === sessionId).map((m) => m.data.reason);
}

describe("a cutoff whose first publish fails", () => {
  it("is decided again and sent once the stream takes it: the session is cut at its target", async () => {
    const seen = attempts("T1");
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 3 }, payment: "prepaid" }, user);
    expect(r.status).toBe(201);
    const id = r.body.sessionId as string;
    await until(async () => (await tp.api("GET", `/v1/sessions/${id}`, undefined, user)).body.state === "active");
    const allow = await refuseControlMessages();
    try {
      // Two tries while refused: the reading that reached the target is being retried.
      await until(async () => seen.reasons.length >= 2);
      expect(seen.reasons.slice(0, 2)).toEqual(["target_reached", "target_reached"]);
    } finally {
      await allow();
    }
    const done = await completed(id);
    expect(done.stopReason).toBe("target_reached");
    expect(done.energyWh).toBeGreaterThanOrEqual(3);
    // Stored once, however many tries it took.
    expect(await storedCutoffs(id)).toEqual(["target_reached"]);
    seen.stop();
  });

  it("a safety stop too: the session with over-current ends with a fault", async () => {
    const seen = attempts("T2");
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T2", target: { energyWh: 50 }, payment: "prepaid" }, user);
    expect(r.status).toBe(201);
    const id = r.body.sessionId as string;
    await until(async () => (await tp.api("GET", `/v1/sessions/${id}`, undefined, user)).body.state === "active");
    const allow = await refuseControlMessages();
    try {
      gw.terminals.get("T2")!.set({ currentA: 30 });
      await until(async () => seen.reasons.length >= 2);
      expect(seen.reasons.slice(0, 2)).toEqual(["fault", "fault"]);
    } finally {
      await allow();
    }
    const done = await completed(id);
    expect(done.stopReason).toBe("fault");
    expect(await storedCutoffs(id)).toEqual(["fault"]);
    seen.stop();
  });
});
