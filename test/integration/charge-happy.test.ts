import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerSums } from "../../control/index.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let user: string;

beforeAll(async () => {
  tp = await testPlatform();
  await seedFleet(tp, { terminals: ["T1", "T2"] });
  // 220 V × 16.8 A = 3696 W: about 1.03 Wh per second of reading time.
  gw = await simGateway(tp, { T1: {}, T2: {} }, { tickMs: 100 });
  user = await tp.token("U1", "user");
  expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1000, reference: "r1" })).status).toBe(201);
  await until(async () => (await tp.api("GET", "/v1/me", undefined, user)).status === 200);
  // The terminals must have been seen before a request is accepted.
  await new Promise((r) => setTimeout(r, 300));
});

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

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
    // Cut within about one reading of the target (a reading is ~0.1 s of 3.7 kW ≈ 0.1 Wh, plus the off-ack stretch).
    expect(done.energyWh).toBeLessThan(5.6);

    const t1 = gw.terminals.get("T1")!;
    const types = t1.commands.map((c) => c.type);
    expect(types.indexOf("handshake")).toBeLessThan(types.indexOf("power_on"));
    expect(types.indexOf("power_on")).toBeLessThan(types.indexOf("power_off"));
    const off = t1.commands.find((c) => c.type === "power_off")!;
    expect(off).toMatchObject({ reason: "target_reached", sessionId: id });
    const on = t1.events.find((e) => e.type === "power_on_ack")!;
    const offAck = t1.events.find((e) => e.type === "power_off_ack")!;
    // Energy is exactly the register difference between the power-on and power-off acknowledgements.
    expect(done.energyWh).toBeCloseTo((offAck as { energyWh: number }).energyWh - (on as { energyWh: number }).energyWh, 3);
    expect(done.feeCents).toBe(1); // ~5.2 Wh × 100 c/kWh = 0.52 c → 1 c (half up), capped by the 1 c hold

    const me = await tp.api("GET", "/v1/me", undefined, user);
    expect(me.body).toMatchObject({ balanceCents: 999, heldCents: 0, debtCents: 0 });
    const sums = await ledgerSums(tp.p.db, "U1");
    expect(sums).toEqual({ balance: 999, held: 0, debt: 0 });
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
