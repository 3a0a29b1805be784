import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGateway, type Gateway } from "../../cli/index.ts";
import { natsServer, type TestNatsServer } from "../helpers/nats-server.ts";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// The platform on a nats-server of this test's own, which the test stops for a while: readiness
// says so from a real round trip, calls that need NATS answer 503 `unavailable`, nothing crashes,
// and the platform works again when the server is back.

let nats: TestNatsServer;
let tp: TestPlatform;
let gw: Gateway;
let gwNc: Awaited<ReturnType<typeof connect>>;
let user: string;

const ready = async () => {
  const r = await fetch(`${tp.p.url}/readyz`);
  return { status: r.status, body: (await r.json()) as { ok: boolean; checks: Record<string, string> } };
};

/** A charge to 2 Wh on the terminal, followed to its end. */
async function chargeToCompletion(qr: string) {
  const created = await until(async () => {
    const r = await tp.api("POST", "/v1/charge-requests", { qr, target: { energyWh: 2 }, payment: "prepaid" }, user);
    return r.status === 201 ? r : null;
  }, 30_000, 250);
  const id = created.body.sessionId as string;
  return until(async () => {
    const r = await tp.api("GET", `/v1/sessions/${id}`, undefined, user);
    return r.body.state === "completed" || r.body.state === "failed" ? r.body : null;
  }, 30_000, 100);
}

beforeAll(async () => {
  nats = await natsServer();
  tp = await testPlatform({ NATS_URL: nats.url });
  await seedFleet(tp, { terminals: ["T1", "T2"] });
  gwNc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  gw = createGateway({ nc: gwNc, prefix: tp.prefix, gatewayId: "G1", tickMs: 100, onError: () => {} });
  gw.addTerminal("T1");
  gw.addTerminal("T2");
  await gw.flush();
  gw.start();
  user = await tp.token("U1", "user");
  expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1000, reference: "r1" })).status).toBe(201);
});

afterAll(async () => {
  await gw?.stop();
  await gwNc?.close();
  await tp?.[Symbol.asyncDispose]();
  await nats?.stop();
});

describe("NATS goes away and comes back", () => {
  it("readiness is 503 during the outage, a charge request is 503 unavailable, and the platform recovers", async () => {
    expect((await ready()).status).toBe(200);
    const first = await chargeToCompletion("qr-T1");
    expect(first).toMatchObject({ state: "completed", stopReason: "target_reached" });

    await nats.halt();
    try {
      // A real round trip fails within its timeout; the connection itself is not closed (it reconnects).
      const down = await until(async () => {
        const r = await ready();
        return r.status === 503 ? r : null;
      }, 15_000, 200);
      expect(down.body.ok).toBe(false);
      expect(down.body.checks.database).toBe("ok");
      expect(down.body.checks.nats).not.toBe("ok");
      expect(tp.p.nc.isClosed()).toBe(false);

      // The terminal's live state is in NATS: the request cannot be served, and says so.
      const charge = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T2", target: { energyWh: 2 }, payment: "prepaid" }, user);
      expect(charge.status).toBe(503);
      expect(charge.body).toMatchObject({ error: { code: "unavailable" } });
      // A session's live events need a subscription the server confirms: not now.
      const events = await fetch(`${tp.p.url}/v1/sessions/${first.sessionId}/events`, { headers: { authorization: `Bearer ${user}` } });
      expect(events.status).toBe(503);
      expect(await events.json()).toMatchObject({ error: { code: "unavailable" } });
      // Still down: readiness has not flipped back by chance.
      expect((await ready()).status).toBe(503);
      // What needs only PostgreSQL still works.
      expect((await tp.api("GET", "/v1/me", undefined, user)).status).toBe(200);
    } finally {
      await nats.start();
    }

    await until(async () => (await ready()).status === 200, 30_000, 200);
    // Commands, terminal events, arms and cutoffs all flow again.
    expect(await chargeToCompletion("qr-T2")).toMatchObject({ state: "completed", stopReason: "target_reached" });
    const me = await tp.api("GET", "/v1/me", undefined, user);
    expect(me.body.heldCents).toBe(0);
  }, 120_000);
});
