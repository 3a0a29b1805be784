import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerSums } from "../../control/index.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform, terminalsSeen } from "../helpers/platform.ts";
import { streamMessages } from "../helpers/streams.ts";

let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let user: string;

beforeAll(async () => {
  tp = await testPlatform();
  await seedFleet(tp, { terminals: ["T1", "T2"] });
  // 220 V × 16.8 A = 3696 W: about 1.03 Wh per second of reading time.
  // Terminals that leave the cutoff to the cloud: these tests follow the cloud's power_off.
  gw = await simGateway(tp, { T1: { limits: false }, T2: { limits: false } }, { tickMs: 100 });
  user = await tp.token("U1", "user");
  expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1000, reference: "r1" })).status).toBe(201);
  await until(async () => (await tp.api("GET", "/v1/me", undefined, user)).status === 200);
  await terminalsSeen(tp, gw);
});

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

const t1Events = () => gw.terminals.get("T1")!.events;

describe("a prepaid charge to an energy target", () => {
  it("handshakes, powers on, cuts off at the target and bills the register difference", async () => {
    const created = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 5 }, payment: "prepaid" }, user);
    expect(created.status).toBe(201);
    expect(created.body.state).toBe("authorizing");
    // Hold: 5 Wh at 100 c/kWh = 0.5 c, rounded up to 1 c.
    expect(created.body.heldCents).toBe(1);
    const id = created.body.sessionId as string;

    const done = await until(async () => {
      const r = await tp.api("GET", `/v1/sessions/${id}`, undefined, user);
      return r.body.state === "completed" ? r.body : null;
    });
    expect(done.stopReason).toBe("target_reached");
    expect(done.energyWh).toBeGreaterThanOrEqual(5);
    // How soon the power went off depends on the machine's load (measured in the cutoff benchmark);
    // what must hold everywhere is that the cut was decided on the first reading at the target.
    const on = t1Events().find((e) => e.type === "power_on_ack") as { energyWh: number };
    const cutoff = (await streamMessages<{ sessionId: string; ts: number }>(tp.p.nc, tp.p.subjects.streams.control)).find(
      (m) => m.subject === tp.p.subjects.cutoff("T1") && m.data.sessionId === id,
    )!;
    expect(cutoff).toBeDefined();
    const readings = (await streamMessages<{ ts: number; energyWh: number }>(tp.p.nc, tp.p.subjects.streams.telemetry))
      .filter((m) => m.subject.endsWith(".T1"))
      .map((m) => m.data);
    const deciding = readings.findIndex((r) => r.ts === cutoff.data.ts);
    expect(deciding).toBeGreaterThan(0);
    expect(readings[deciding]!.energyWh - on.energyWh).toBeGreaterThanOrEqual(5 - 1e-9);
    expect(readings[deciding - 1]!.energyWh - on.energyWh).toBeLessThan(5);

    const t1 = gw.terminals.get("T1")!;
    const types = t1.commands.map((c) => c.type);
    expect(types.indexOf("handshake")).toBeLessThan(types.indexOf("power_on"));
    expect(types.indexOf("power_on")).toBeLessThan(types.indexOf("power_off"));
    const off = t1.commands.find((c) => c.type === "power_off")!;
    expect(off).toMatchObject({ reason: "target_reached", sessionId: id });
    const offAck = t1.events.find((e) => e.type === "power_off_ack")!;
    // Energy is exactly the register difference between the power-on and power-off acknowledgements.
    expect(done.energyWh).toBeCloseTo((offAck as { energyWh: number }).energyWh - (on as { energyWh: number }).energyWh, 3);
    expect(done.feeCents).toBe(1); // ~5.2 Wh × 100 c/kWh = 0.52 c → 1 c (half up), capped by the 1 c hold

    const me = await tp.api("GET", "/v1/me", undefined, user);
    expect(me.body).toMatchObject({ balanceCents: 999, heldCents: 0, debtCents: 0 });
    const sums = await ledgerSums(tp.p.db, "U1");
    expect(sums).toEqual({ balance: 999, held: 0, debt: 0 });

    // The finished session reaches the results stream (for the backup store) through the outbox.
    const records = await until(async () => {
      const r = await streamMessages<{ sessionId: string; feeCents: number; franchiseeId: string }>(tp.p.nc, tp.p.subjects.streams.results);
      return r.find((x) => x.data.sessionId === id) ? r : null;
    });
    const rec = records.find((x) => x.data.sessionId === id)!;
    expect(rec.subject).toBe(tp.p.subjects.sessionRecord("T1"));
    expect(rec.data).toMatchObject({ feeCents: 1, franchiseeId: "FR1", state: "completed" });
    await until(async () => (await tp.p.db.query("SELECT count(*)::int AS n FROM outbox")).rows[0].n === 0);

    // Once the session has settled (5 s), the control service rolls it into usage facts: the
    // user's report has it, its hours summing to the billed energy.
    const usage = await until(async () => {
      await tp.p.control!.rollUsage();
      const u = await tp.api("GET", `/v1/me/usage?from=${done.createdAt - 1000}&to=${Date.now()}`, undefined, user);
      return u.body.sessions === 1 ? u : null;
    }, 20_000, 500);
    expect(usage.body).toMatchObject({ userId: "U1", sessions: 1, energyWh: done.energyWh, feeCents: 1 });
    expect(usage.body.hourly.reduce((a: number, b: number) => a + Math.round(b * 1000), 0)).toBe(Math.round(done.energyWh * 1000));
  });

  it("answers terminal_busy while a session runs and accepts the terminal again after", async () => {
    const a = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T2", target: { durationS: 1 }, payment: "prepaid" }, user);
    expect(a.status).toBe(201);
    const b = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T2", target: { energyWh: 1 }, payment: "prepaid" }, user);
    expect(b.status).toBe(409);
    expect(b.body.error.code).toBe("terminal_busy");
    const done = await until(async () => {
      const r = await tp.api("GET", `/v1/sessions/${a.body.sessionId}`, undefined, user);
      return r.body.state === "completed" ? r.body : null;
    });
    expect(done.stopReason).toBe("target_reached");
    expect(done.durationS).toBeGreaterThanOrEqual(1);
  });
});

describe("session events", () => {
  it("streams state changes and progress over server-sent events, ending after the final state", async () => {
    const created = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 1 }, payment: "prepaid" }, user);
    expect(created.status).toBe(201);
    const res = await fetch(`${tp.p.url}/v1/sessions/${created.body.sessionId}/events`, { headers: { authorization: `Bearer ${user}` } });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const text = await res.text(); // the server ends the stream after `completed`
    const events = text
      .split("\n\n")
      .filter((b) => b.startsWith("event:"))
      .map((b) => ({ event: /^event: (\w+)/.exec(b)![1], data: JSON.parse(/\ndata: (.*)$/s.exec(b)![1]!) }));
    const states = events.filter((e) => e.event === "session").map((e) => e.data.state);
    expect(states[0]).toMatch(/authorizing|active/);
    expect(states).toContain("active");
    expect(states.at(-1)).toBe("completed");
    const progress = events.filter((e) => e.event === "progress").map((e) => e.data);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatchObject({ sessionId: created.body.sessionId, terminalId: "T1" });
    // Energy never decreases across progress events.
    for (let i = 1; i < progress.length; i++) expect(progress[i].energyWh).toBeGreaterThanOrEqual(progress[i - 1].energyWh);
  });

  it("refuses another user's session", async () => {
    const created = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T2", target: { energyWh: 1 }, payment: "prepaid" }, user);
    const other = await tp.token("U2", "user");
    const res = await fetch(`${tp.p.url}/v1/sessions/${created.body.sessionId}/events`, { headers: { authorization: `Bearer ${other}` } });
    expect(res.status).toBe(403);
    expect((await tp.api("GET", `/v1/sessions/${created.body.sessionId}`, undefined, other)).status).toBe(403);
  });
});
