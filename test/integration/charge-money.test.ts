import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerSums } from "../../control/index.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform, terminalsSeen } from "../helpers/platform.ts";

// A region where energy is dear (100 c per Wh) so that money caps are reached in a second or two.
let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;

beforeAll(async () => {
  tp = await testPlatform({ CONTROL_TICK_MS: "100" });
  await seedFleet(tp, { terminals: ["T1"] });
  await tp.api("PUT", "/v1/admin/regions/R2", { name: "Dear", timezone: "Asia/Shanghai" });
  for (const t of ["AMT", "CRED", "TOU"])
    await tp.api("PUT", `/v1/admin/terminals/${t}`, { qr: `qr-${t}`, gatewayId: "G1", regionId: "R2", franchiseeId: "FR1" });
  const v = await tp.api("PUT", "/v1/admin/regions/R2/tariff", {
    effectiveFrom: 0,
    periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100_000, timeCentsPerHour: 0 }],
  });
  expect(v.status).toBe(201);
  gw = await simGateway(tp, { AMT: {}, CRED: {} }, { tickMs: 100 });
  await terminalsSeen(tp, gw);
});

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

async function ended(id: string, token: string) {
  return until(async () => {
    const r = await tp.api("GET", `/v1/sessions/${id}`, undefined, token);
    return r.body.state === "completed" || r.body.state === "failed" ? r.body : null;
  }, 20_000);
}

describe("money", () => {
  it("an amount target stops when the fee reaches it and bills exactly the amount", async () => {
    const t = await tp.token("UA", "user");
    await tp.api("POST", "/v1/admin/users/UA/topups", { amountCents: 500, reference: "ua-1" });
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-AMT", target: { amountCents: 50 }, payment: "prepaid" }, t);
    expect(r.status).toBe(201);
    expect(r.body.heldCents).toBe(50);
    const s = await ended(r.body.sessionId, t);
    expect(s).toMatchObject({ state: "completed", stopReason: "target_reached", feeCents: 50 });
    // At 100 c/Wh, 50 c is 0.5 Wh; the fee was capped at the amount although a little more flowed.
    expect(s.energyWh).toBeGreaterThanOrEqual(0.5);
    expect((await tp.api("GET", "/v1/me", undefined, t)).body).toMatchObject({ balanceCents: 450, heldCents: 0 });
    expect(await ledgerSums(tp.p.db, "UA")).toEqual({ balance: 450, held: 0, debt: 0 });
  });

  it("postpaid is cut credit_exhausted before passing the credit limit, and the fee becomes debt", async () => {
    const t = await tp.token("UC", "user");
    expect((await tp.api("PUT", "/v1/admin/users/UC", { creditLimitCents: 150 })).status).toBe(200);
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-CRED", target: { energyWh: 100 }, payment: "postpaid" }, t);
    expect(r.status).toBe(201);
    expect(r.body.heldCents).toBe(0);
    const s = await ended(r.body.sessionId, t);
    expect(s.stopReason).toBe("credit_exhausted");
    expect(s.feeCents).toBeLessThanOrEqual(150);
    expect(s.feeCents).toBeGreaterThan(100);
    const me = (await tp.api("GET", "/v1/me", undefined, t)).body;
    expect(me).toMatchObject({ debtCents: s.feeCents, balanceCents: 0, creditLimitCents: 150 });

    // A top-up pays the debt first.
    const top = await tp.api("POST", "/v1/admin/users/UC/topups", { amountCents: 200, reference: "uc-1" });
    expect(top.body).toMatchObject({ debtCents: 0, balanceCents: 200 - s.feeCents });
    expect(await ledgerSums(tp.p.db, "UC")).toEqual({ balance: 200 - s.feeCents, held: 0, debt: 0 });
  });

  it("top-ups are idempotent by reference", async () => {
    const a = await tp.api("POST", "/v1/admin/users/UT/topups", { amountCents: 300, reference: "same" });
    const b = await tp.api("POST", "/v1/admin/users/UT/topups", { amountCents: 300, reference: "same" });
    expect(a.status).toBe(201);
    expect(b.status).toBe(200);
    expect(b.body).toMatchObject({ credited: false, balanceCents: 300 });
    const c = await tp.api("POST", "/v1/admin/users/UT/topups", { amountCents: 1, reference: "other" });
    expect(c.body.balanceCents).toBe(301);
  });
});
