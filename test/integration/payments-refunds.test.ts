import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerMismatches, listAudit, NotificationRefused, type SimPaymentProvider } from "../../control/internal.ts";
import { seedFleet, simGateway, terminalsSeen, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// Money through the public API: paying in through the simulated provider (signed notifications,
// once per transaction, queries for lost notifications), paying off debt, withdrawals, refunds,
// receipts, the user's history and the franchisee's statement. The ledger invariant is checked
// after every movement.
let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let sim: SimPaymentProvider;
let u1: string;
let fr1: string;

// 100 c per Wh and 100 c per second: a few seconds of charging cost hundreds of cents, in both parts.
const PERIODS = [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100_000, timeCentsPerHour: 360_000 }];

const notify = (n: { headers: Record<string, string>; body: string }) =>
  fetch(`${tp.p.url}/v1/payments/notify/sim`, { method: "POST", headers: n.headers, body: n.body }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

async function ledgerWhole() {
  expect(await ledgerMismatches(tp.p.db)).toEqual([]);
}

async function charge(_user: string, token: string, payment: "prepaid" | "postpaid", durationS = 2): Promise<any> {
  const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { durationS }, payment }, token);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return until(async () => {
    const s = await tp.api("GET", `/v1/sessions/${r.body.sessionId}`, undefined, token);
    return s.body.state === "completed" || s.body.state === "failed" ? s.body : null;
  }, 30_000);
}

async function order(token: string, body: object) {
  return tp.api("POST", "/v1/me/payment-orders", { provider: "sim", ...body }, token);
}

beforeAll(async () => {
  tp = await testPlatform({ PAYMENT_SIM: "true", CONTROL_TICK_MS: "100" });
  await seedFleet(tp, { terminals: ["T1"], periods: PERIODS });
  gw = await simGateway(tp, { T1: { limits: false } }, { tickMs: 100 });
  sim = tp.p.control!.simProvider!;
  u1 = await tp.token("U1", "user");
  fr1 = await tp.token("FR1", "franchisee");
  await terminalsSeen(tp, gw);
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

describe("paying in through a provider", () => {
  it("credits an order once per provider transaction, however often the notification comes", async () => {
    const created = await order(u1, { amountCents: 5000, idempotencyKey: "o-1" });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: "pending", amountCents: 5000, purpose: "topup", provider: "sim" });
    expect(created.body.payParams.prepayId).toContain(created.body.orderId);
    // The same key again is the same order (200), not a second one.
    const again = await order(u1, { amountCents: 5000, idempotencyKey: "o-1" });
    expect(again.status).toBe(200);
    expect(again.body.orderId).toBe(created.body.orderId);
    expect((await order(u1, { amountCents: 4000, idempotencyKey: "o-1" })).status).toBe(409);

    const paid = await sim.pay(created.body.orderId, { payerRef: "openid-U1" });
    expect(paid.answer).toEqual({ status: 200, body: { code: "SUCCESS", message: "credited" } });
    expect((await tp.api("GET", "/v1/me", undefined, u1)).body.balanceCents).toBe(5000);
    // The provider sends it again (freshly signed): acknowledged, not credited twice.
    const resent = await notify(sim.notification(created.body.orderId));
    expect(resent).toEqual({ status: 200, body: { code: "SUCCESS", message: "already credited" } });
    expect((await tp.api("GET", "/v1/me", undefined, u1)).body.balanceCents).toBe(5000);
    const o = await tp.api("GET", `/v1/me/payment-orders/${created.body.orderId}`, undefined, u1);
    expect(o.body).toMatchObject({ status: "paid", transactionId: expect.stringMatching(/^simtx-/) });
    await ledgerWhole();
  });

  it("refuses and records bad, replayed and stale signatures", async () => {
    const { body } = await order(u1, { amountCents: 700, idempotencyKey: "o-bad" });
    const { notification: n } = await sim.pay(body.orderId, { payerRef: "openid-U1", notify: false });
    // A body changed after signing.
    const tampered = { headers: n.headers, body: n.body.replace('"amountCents":700', '"amountCents":70000') };
    expect(await notify(tampered)).toMatchObject({ status: 401, body: { error: { code: "invalid_signature" } } });
    // Signed by another key.
    const other = { headers: { ...n.headers, "pay-signature": Buffer.from("x".repeat(256)).toString("base64") }, body: n.body };
    expect((await notify(other)).status).toBe(401);
    // No signature at all.
    expect((await notify({ headers: { "content-type": "application/json" }, body: n.body })).status).toBe(401);
    // Stamped an hour ago: a replay of an old notification.
    const stale = sim.sign(n.body, Date.now() - 3_600_000);
    expect(await notify(stale)).toMatchObject({ status: 401, body: { error: { code: "stale_notification" } } });
    expect((await tp.api("GET", "/v1/me", undefined, u1)).body.balanceCents).toBe(5000);
    // The genuine one credits; the very same one again (its nonce) is a replay.
    expect((await notify(n)).status).toBe(200);
    expect(await notify(n)).toMatchObject({ status: 401, body: { error: { code: "replayed_notification" } } });
    expect((await tp.api("GET", "/v1/me", undefined, u1)).body.balanceCents).toBe(5700);
    // A correctly signed notification for an unknown order is refused too.
    const unknown = sim.sign(n.body.replace(body.orderId, "PO-nope"));
    expect(await notify(unknown)).toMatchObject({ status: 400, body: { error: { code: "order_not_found" } } });
    const refused = await tp.api("GET", "/v1/admin/payments/refused-notifications");
    const reasons = refused.body.items.map((x: { reason: string }) => x.reason.split(":")[0]);
    expect(reasons).toEqual(expect.arrayContaining(["invalid_signature", "stale_notification", "replayed_notification", "order_not_found"]));
    expect(reasons.filter((r: string) => r === "invalid_signature")).toHaveLength(3);
    // A signed body that is not a notification: the 400 keeps the refusal, and the refusal the
    // parse error, as their causes.
    const unreadable: unknown = await tp.p.control!.payments.notify("sim", sim.sign("not json")).catch((e: unknown) => e);
    expect(unreadable).toMatchObject({ name: "ApiError", status: 400, code: "invalid_notification" });
    const refusal = (unreadable as Error).cause;
    expect(refusal).toBeInstanceOf(NotificationRefused);
    expect((refusal as Error).cause).toBeInstanceOf(SyntaxError);
    await ledgerWhole();
  });

  it("credits an order whose notification never came, by a query, once", async () => {
    const a = (await order(u1, { amountCents: 300, idempotencyKey: "o-lost-1" })).body;
    await sim.pay(a.orderId, { payerRef: "openid-U1", notify: false });
    // The app asks for its order on return from the provider's app: the platform queries the provider.
    const read = await tp.api("GET", `/v1/me/payment-orders/${a.orderId}`, undefined, u1);
    expect(read.body.status).toBe("paid");
    expect((await tp.api("GET", "/v1/me", undefined, u1)).body.balanceCents).toBe(6000);
    // The notification turns up late: acknowledged, not credited again.
    expect((await notify(sim.notification(a.orderId))).body.message).toBe("already credited");

    const b = (await order(u1, { amountCents: 200, idempotencyKey: "o-lost-2" })).body;
    await sim.pay(b.orderId, { payerRef: "openid-U1", notify: false });
    const pending = (await order(u1, { amountCents: 50, idempotencyKey: "o-unpaid" })).body;
    const rec = await tp.api("POST", "/v1/admin/payments/reconcile", { olderThanS: 0 });
    expect(rec.status).toBe(200);
    expect(rec.body).toMatchObject({ ordersPaid: 1 });
    expect(rec.body.ordersChecked).toBeGreaterThanOrEqual(2);
    expect((await tp.api("GET", `/v1/me/payment-orders/${pending.orderId}`, undefined, u1)).body.status).toBe("pending");
    expect((await tp.api("GET", "/v1/me", undefined, u1)).body.balanceCents).toBe(6200);
    // Another user's order is not found for this one.
    expect((await tp.api("GET", `/v1/me/payment-orders/${a.orderId}`, undefined, await tp.token("U9", "user"))).status).toBe(404);
    await ledgerWhole();
  });
});

describe("postpaid debt", () => {
  it("is paid off through the provider or from the wallet", async () => {
    const u2 = await tp.token("U2", "user");
    expect((await tp.api("PUT", "/v1/admin/users/U2", { creditLimitCents: 100_000 })).status).toBe(200);
    const s = await charge("U2", u2, "postpaid");
    expect(s.feeCents).toBeGreaterThan(0);
    expect((await tp.api("GET", "/v1/me", undefined, u2)).body.debtCents).toBe(s.feeCents);
    expect((await tp.api("POST", "/v1/me/debt-payments", { idempotencyKey: "d-0" }, u2)).status).toBe(402);

    // Through the provider: a `debt` order is for the whole debt.
    const d = await order(u2, { purpose: "debt", idempotencyKey: "debt-1" });
    expect(d.status).toBe(201);
    expect(d.body.amountCents).toBe(s.feeCents);
    await sim.pay(d.body.orderId, { payerRef: "openid-U2" });
    expect((await tp.api("GET", "/v1/me", undefined, u2)).body).toMatchObject({ debtCents: 0, balanceCents: 0 });
    expect((await order(u2, { purpose: "debt", idempotencyKey: "debt-2" })).body.error.code).toBe("no_debt");

    // From the wallet: another postpaid charge, then a top-up without paying the debt... a top-up pays
    // it first, so this one is paid with balance the user already had.
    const top = (await order(u2, { amountCents: 100_000, idempotencyKey: "u2-top" })).body;
    await sim.pay(top.orderId, { payerRef: "openid-U2" });
    const s2 = await charge("U2", u2, "postpaid");
    const before = (await tp.api("GET", "/v1/me", undefined, u2)).body;
    expect(before.debtCents).toBe(s2.feeCents);
    const paid = await tp.api("POST", "/v1/me/debt-payments", { idempotencyKey: "d-1" }, u2);
    expect(paid.status).toBe(201);
    expect(paid.body).toMatchObject({ settledCents: s2.feeCents, wallet: { debtCents: 0, balanceCents: before.balanceCents - s2.feeCents } });
    const again = await tp.api("POST", "/v1/me/debt-payments", { idempotencyKey: "d-1" }, u2);
    expect(again.status).toBe(200);
    expect(again.body.wallet.balanceCents).toBe(before.balanceCents - s2.feeCents);
    const audited = await listAudit(tp.p.db, { action: "wallet.pay_debt", limit: 10 });
    expect(audited.items).toMatchObject([{ actor: { role: "user" }, objectType: "user", after: { settledCents: s2.feeCents } }]);
    await ledgerWhole();
  }, 60_000);
});

describe("withdrawals", () => {
  it("pay balance out to the payer's account once per key, and a failed payout goes back", async () => {
    const w = await tp.api("POST", "/v1/me/withdrawals", { amountCents: 1000, idempotencyKey: "w-1" }, u1);
    expect(w.status).toBe(201);
    expect(w.body.withdrawal).toMatchObject({ status: "succeeded", amountCents: 1000, provider: "sim", transactionId: expect.stringMatching(/^simpo-/) });
    expect(w.body.wallet.balanceCents).toBe(5200);
    const again = await tp.api("POST", "/v1/me/withdrawals", { amountCents: 1000, idempotencyKey: "w-1" }, u1);
    expect(again.status).toBe(200);
    expect(again.body.wallet.balanceCents).toBe(5200);
    expect((await tp.api("POST", "/v1/me/withdrawals", { amountCents: 999_999, idempotencyKey: "w-2" }, u1)).status).toBe(402);
    // Never paid through a provider: nowhere to pay out to.
    const u8 = await tp.token("U8", "user");
    await tp.api("POST", "/v1/admin/users/U8/topups", { amountCents: 100, reference: "u8" });
    expect((await tp.api("POST", "/v1/me/withdrawals", { amountCents: 10, idempotencyKey: "w" }, u8)).body.error.code).toBe("no_payout_account");

    // An admin's withdrawal for a user whose account cannot receive: the payout fails, the money returns.
    sim.failingPayers.add("openid-U1");
    const failed = await tp.api("POST", "/v1/admin/users/U1/withdrawals", { amountCents: 200, reason: "user closed account", idempotencyKey: "aw-1" });
    expect(failed.status).toBe(201);
    expect(failed.body.withdrawal).toMatchObject({ status: "failed", failure: expect.any(String) });
    expect(failed.body.wallet.balanceCents).toBe(5200);
    sim.failingPayers.delete("openid-U1");
    const audited = await listAudit(tp.p.db, { action: "wallet.withdraw", limit: 10 });
    expect(audited.items[0]).toMatchObject({ actor: { sub: "admin1", role: "admin" }, objectType: "user", objectId: "U1", reason: "user closed account" });
    // The user's own withdrawal is a person moving money too: audited once (its repeat adds nothing).
    expect(audited.items.filter((i: { actor: { role: string } }) => i.actor.role === "user")).toMatchObject([{ actor: { sub: "U1", role: "user" }, objectId: "U1" }]);
    await ledgerWhole();
  });
});

describe("refunds, receipts and history", () => {
  let session: any;
  it("a receipt breaks the fee down by period into energy and time parts that sum to it", async () => {
    session = await charge("U1", u1, "prepaid", 3);
    expect(session.state).toBe("completed");
    const r = await tp.api("GET", `/v1/sessions/${session.sessionId}/receipt`, undefined, u1);
    expect(r.status).toBe(200);
    const rc = r.body;
    expect(rc.feeCents).toBe(session.feeCents);
    expect(rc.lines).toHaveLength(1);
    expect(rc.lines[0]).toMatchObject({ start: "00:00", end: "24:00", energyCentsPerKwh: 100_000, timeCentsPerHour: 360_000 });
    expect(rc.lines[0].energyCents).toBeGreaterThan(0);
    expect(rc.lines[0].timeCents).toBeGreaterThan(0);
    const sum = rc.lines.reduce((a: number, l: any) => a + l.energyCents + l.timeCents, 0);
    expect(sum + rc.capAdjustmentCents).toBe(rc.feeCents);
    expect(rc.capAdjustmentCents).toBeLessThanOrEqual(0);
    expect(rc.payment).toMatchObject({ method: "prepaid", capturedCents: rc.feeCents, releasedCents: rc.payment.heldCents - rc.feeCents });
    expect(rc.energyWh).toBe(session.energyWh);
    // Another user's receipt is refused; a live session has none yet.
    expect((await tp.api("GET", `/v1/sessions/${session.sessionId}/receipt`, undefined, await tp.token("U9", "user"))).status).toBe(403);
  }, 60_000);

  it("an admin refunds part, then the rest, never more than was captured, once per key, audited", async () => {
    const fee = session.feeCents as number;
    const bal = (await tp.api("GET", "/v1/me", undefined, u1)).body.balanceCents;
    const path = `/v1/admin/sessions/${session.sessionId}/refunds`;
    const a = await tp.api("POST", path, { amountCents: 100, reason: "slow charge", idempotencyKey: "rf-1" });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ feeCents: fee, refundedCents: 100, wallet: { balanceCents: bal + 100 } });
    const again = await tp.api("POST", path, { amountCents: 100, reason: "slow charge", idempotencyKey: "rf-1" });
    expect(again.status).toBe(200);
    expect(again.body.refund.refundId).toBe(a.body.refund.refundId);
    expect((await tp.api("POST", path, { amountCents: 5, reason: "x", idempotencyKey: "rf-1" })).body.error.code).toBe("idempotency_key_reused");
    expect((await tp.api("POST", path, { amountCents: fee, reason: "too much", idempotencyKey: "rf-2" })).body.error.code).toBe("refund_exceeds_fee");
    const rest = await tp.api("POST", path, { amountCents: fee - 100, reason: "the rest", idempotencyKey: "rf-3" });
    expect(rest.status).toBe(201);
    expect((await tp.api("POST", path, { amountCents: 1, reason: "one more", idempotencyKey: "rf-4" })).status).toBe(409);
    expect((await tp.api("GET", "/v1/me", undefined, u1)).body.balanceCents).toBe(bal + fee);
    // Users cannot refund.
    expect((await tp.api("POST", path, { amountCents: 1, reason: "me", idempotencyKey: "rf-5" }, u1)).status).toBe(403);
    const rc = (await tp.api("GET", `/v1/sessions/${session.sessionId}/receipt`, undefined, u1)).body;
    expect(rc.refunds.map((x: any) => x.amountCents)).toEqual([100, fee - 100]);
    expect(rc).toMatchObject({ refundedCents: fee, netCents: 0 });
    const audited = await listAudit(tp.p.db, { objectType: "session", objectId: session.sessionId, limit: 10 });
    expect(audited.items).toHaveLength(2);
    expect(audited.items[1]).toMatchObject({ action: "session.refund", actor: { sub: "admin1" }, reason: "slow charge", before: { refundedCents: 0 }, after: { refundedCents: 100 } });
    await ledgerWhole();
  });

  it("lists the user's sessions newest first, a page at a time", async () => {
    await charge("U1", u1, "prepaid", 1);
    const all: any[] = [];
    let cursor: string | null = null;
    do {
      const q = `/v1/me/sessions?limit=1${cursor ? `&cursor=${cursor}` : ""}`;
      const page: { status: number; body: any } = await tp.api("GET", q, undefined, u1);
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(1);
      all.push(...page.body.items);
      cursor = page.body.next;
    } while (cursor);
    expect(all.length).toBe(2);
    expect(all.every((s) => s.userId === "U1")).toBe(true);
    expect(all[0].createdAt).toBeGreaterThanOrEqual(all[1].createdAt);
    expect(all[1].sessionId).toBe(session.sessionId);
    expect((await tp.api("GET", "/v1/me/sessions?cursor=bogus!", undefined, u1)).status).toBe(400);
  }, 60_000);
});

describe("franchisees", () => {
  it("close a scan-failure fault by hand with a note, audited", async () => {
    const rep = await tp.api("POST", "/v1/scan-failures", { qr: "qr-T1", reason: "camera would not focus" }, u1);
    expect(rep.status).toBe(202);
    const id = rep.body.faultId;
    const other = await tp.token("FR2", "franchisee");
    expect((await tp.api("POST", `/v1/franchisee/faults/${id}/close`, { note: "not mine" }, other)).status).toBe(403);
    const closed = await tp.api("POST", `/v1/franchisee/faults/${id}/close`, { note: "user scanned a sticker, not the code" }, fr1);
    expect(closed.status).toBe(200);
    expect(closed.body).toMatchObject({ faultId: id, status: "resolved", kind: "scan_failure" });
    expect(closed.body.evidence.userId).toBeUndefined();
    expect((await tp.api("POST", `/v1/franchisee/faults/${id}/close`, { note: "again" }, fr1)).body.error.code).toBe("fault_resolved");
    const audited = await listAudit(tp.p.db, { objectType: "fault", objectId: id, limit: 5 });
    expect(audited.items).toHaveLength(1);
    expect(audited.items[0]).toMatchObject({ action: "fault.close", actor: { sub: "FR1", role: "franchisee" }, reason: "user scanned a sticker, not the code", before: { status: "open" }, after: { status: "resolved" } });
  });

  it("the monthly statement equals the sums of the receipts, as JSON and CSV", async () => {
    const month = new Date().toISOString().slice(0, 7);
    const st = await tp.api("GET", `/v1/franchisee/statements/${month}`, undefined, fr1);
    expect(st.status).toBe(200);
    // Every completed session of the month, through the receipts of their users.
    const ids = (await tp.p.db.query<{ session_id: string; user_id: string }>("SELECT session_id, user_id FROM sessions WHERE state = 'completed'")).rows;
    const receipts = await Promise.all(ids.map(async (s) => (await tp.api("GET", `/v1/sessions/${s.session_id}/receipt`, undefined, await tp.token(s.user_id, "user"))).body));
    const sum = (f: (r: any) => number) => receipts.reduce((a, r) => a + f(r), 0);
    expect(receipts.length).toBeGreaterThanOrEqual(4);
    expect(st.body.totals).toMatchObject({ sessions: receipts.length, feeCents: sum((r) => r.feeCents), refundCents: sum((r) => r.refundedCents), netCents: sum((r) => r.netCents) });
    expect(st.body.totals.energyWh).toBeCloseTo(sum((r) => r.energyWh), 6);
    expect(st.body.terminals).toHaveLength(1);
    expect(st.body.terminals[0]).toMatchObject({ terminalId: "T1", sessions: receipts.length, feeCents: sum((r) => r.feeCents) });
    expect(st.body.refunds).toHaveLength(2);
    const csv = await fetch(`${tp.p.url}/v1/franchisee/statements/${month}?format=csv`, { headers: { authorization: `Bearer ${fr1}` } });
    expect(csv.headers.get("content-type")).toContain("text/csv");
    const lines = (await csv.text()).trim().split("\r\n");
    expect(lines[0]).toBe("terminal_id,sessions,energy_wh,fee_cents,refund_cents,net_cents");
    expect(lines.at(-1)).toBe(["TOTAL", st.body.totals.sessions, st.body.totals.energyWh, st.body.totals.feeCents, st.body.totals.refundCents, st.body.totals.netCents].join(","));
    // Another franchisee's statement has none of it.
    const other = await tp.api("GET", `/v1/franchisee/statements/${month}`, undefined, await tp.token("FR2", "franchisee"));
    expect(other.body.totals.sessions).toBe(0);
    expect((await tp.api("GET", "/v1/franchisee/statements/2026-13", undefined, fr1)).status).toBe(400);
    await ledgerWhole();
  });
});
