import { createServer, type Server } from "node:http";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPlatform, type Platform } from "../../cli/index.ts";
import { NATS_URL } from "../helpers/env.ts";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { streamMessages } from "../helpers/streams.ts";

// Two control instances on one database and one NATS (issue 12), and no processor anywhere: the
// second runs the control part alone. Live state comes from the telemetry stream, so it accepts
// charges; every round's effect happens once; when one instance stops, the other does the rounds.
let tp: TestPlatform;
let b: Platform;
let nc: NatsConnection;
let hook: Server;
let hookUrl = "";
const posts: string[] = [];

beforeAll(async () => {
  tp = await testPlatform(
    { CMD_RETRY_MS: "500", CMD_TIMEOUT_MS: "4000", ARMS_CHECK_MS: "1000", USAGE_ROLL_S: "1", TERMINAL_OFFLINE_S: "3" },
    { parts: { cutoff: false, faults: false } },
  );
  await seedFleet(tp, { terminals: ["T1", "T2", "T3", "T4", "T5"] });
  b = await startPlatform(tp.config, { parts: { control: true, cutoff: false, faults: false, writer: false, backup: false } });
  nc = await connect({ servers: NATS_URL });
  hook = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      posts.push(body);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
  hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`;
});
afterAll(async () => {
  await b?.stop();
  await nc?.close();
  hook?.close();
  await tp?.[Symbol.asyncDispose]();
});

const onB = async (method: string, path: string, body: unknown, token: string) => {
  const res = await fetch(b.url + path, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
};
const reading = (o: object = {}) => ({ ts: Date.now(), seq: 1, state: "off", currentA: 0, voltageV: 230, energyWh: 100, ...o });
/** A terminal's public state as B answers it (live state read from the telemetry stream). */
const stateOnB = async (terminalId: string) => ((await (await fetch(`${b.url}/v1/terminals/${terminalId}`)).json()) as { state?: string }).state;

describe("a control-only instance", () => {
  it("accepts a charge for a terminal seen within the offline window and refuses one that is not", async () => {
    const s = tp.p.subjects;
    await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 10_000, reference: "r1" });
    const user = await tp.token("U1", "user");
    // T1 single readings; T3 in an older batch of its gateway, not the newest; T4 seen, then silent.
    nc.publish(s.tel("G1", "T4"), JSON.stringify(reading()));
    await nc.flush();
    // T4 seen by B, then past the offline window (3 s of real time: arrival is the stream's clock).
    await until(async () => (await stateOnB("T4")) !== "offline", 10_000);
    await until(async () => (await stateOnB("T4")) === "offline", 10_000);
    nc.publish(s.tel("G1", "T1"), JSON.stringify(reading()));
    nc.publish(s.telBatch("G1"), JSON.stringify({ readings: [{ terminalId: "T3", ...reading() }] }));
    nc.publish(s.telBatch("G1"), JSON.stringify({ readings: [{ terminalId: "T5", ...reading() }] }));
    await nc.flush();

    expect((await onB("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 5 }, payment: "prepaid" }, user)).status).toBe(201);
    expect((await onB("POST", "/v1/charge-requests", { qr: "qr-T3", target: { energyWh: 5 }, payment: "prepaid" }, user)).status).toBe(201);
    const never = await onB("POST", "/v1/charge-requests", { qr: "qr-T2", target: { energyWh: 5 }, payment: "prepaid" }, user);
    expect(never.status).toBe(409);
    expect(never.body.error?.code ?? never.body.code).toBe("terminal_offline");
    const silent = await onB("POST", "/v1/charge-requests", { qr: "qr-T4", target: { energyWh: 5 }, payment: "prepaid" }, user);
    expect(silent.status).toBe(409);
  });
});

describe("rounds across two control instances", () => {
  it("repeats a pending command once per interval, not once per instance", async () => {
    const seen: string[] = [];
    const sub = nc.subscribe(tp.p.subjects.cmd("G1", "T5"), { callback: (_e, m) => void seen.push(m.string()) });
    nc.publish(tp.p.subjects.tel("G1", "T5"), JSON.stringify(reading()));
    await nc.flush();
    const user = await tp.token("U1", "user");
    const r = await onB("POST", "/v1/charge-requests", { qr: "qr-T5", target: { energyWh: 5 }, payment: "prepaid" }, user);
    expect(r.status).toBe(201);
    // No gateway answers: the handshake is repeated every 500 ms until its 4 s deadline, then the session fails.
    await until(async () => (await tp.api("GET", `/v1/sessions/${r.body.sessionId}`)).body.state === "failed", 15_000);
    // Each repeat is published as soon as its claim commits, and the expiry that failed the session
    // came after every claim: once both instances' connections, then this one, have made a round
    // trip to the server, every handshake sent is here.
    await tp.p.nc.flush();
    await b.nc.flush();
    await nc.flush();
    sub.unsubscribe();
    const handshakes = seen.filter((x) => x.includes("handshake"));
    // One send and a repeat per 500 ms over 4 s: about 9; two instances each repeating would be about 17.
    expect(handshakes.length).toBeGreaterThanOrEqual(3);
    expect(handshakes.length).toBeLessThanOrEqual(10);
  });

  it("delivers a webhook once and publishes a franchisee's daily package once", async () => {
    await tp.p.db.query("INSERT INTO franchisee_webhooks (franchisee_id, url, secret) VALUES ('FR1', $1::text, 'secret-0123456789')", [hookUrl]);
    await tp.p.db.query(`INSERT INTO webhook_deliveries (franchisee_id, body, next_at) VALUES ('FR1', '{"n":1}'::jsonb, now())`);
    await until(async () => posts.length >= 1, 15_000);
    const pkgs = await until(async () => {
      const m = await streamMessages(tp.p.nc, tp.p.subjects.streams.packages);
      return m.length ? m : null;
    }, 15_000);
    // Several rounds of both instances later (three more package rounds, a second apart; the webhook
    // rounds run each 500 ms on each instance), still one of each.
    const packageRounds = async () => (await tp.p.db.query<{ runs: number }>("SELECT runs FROM control_rounds WHERE name = 'daily_packages'")).rows[0]?.runs ?? 0;
    const r0 = await packageRounds();
    await until(async () => (await packageRounds()) >= r0 + 3, 15_000);
    expect(posts.filter((p) => p === '{"n":1}').length).toBe(1);
    expect((await streamMessages(tp.p.nc, tp.p.subjects.streams.packages)).length).toBe(pkgs.length);
    expect(pkgs.length).toBe(1);
  });

  it("checks the arms once per interval, and the other instance takes the rounds over when one stops", async () => {
    const runs = async () => (await tp.p.db.query<{ runs: number; holder: string }>("SELECT runs, holder FROM control_rounds WHERE name = 'arms_check'")).rows[0]!;
    const r0 = (await runs()).runs;
    // A rate over wall time, not a wait for something: the rounds done in 4 s.
    await new Promise((r) => setTimeout(r, 4000));
    const r1 = (await runs()).runs;
    // 1 s rounds for 4 s: about 4; each instance doing its own would be about 8.
    expect(r1 - r0).toBeGreaterThanOrEqual(2);
    expect(r1 - r0).toBeLessThanOrEqual(6);
    // B stops; A goes on with every round.
    const bId = b.control!.instance;
    await b.stop();
    const r2 = (await runs()).runs;
    const after = await until(async () => {
      const x = await runs();
      return x.runs >= r2 + 2 && x.holder === tp.p.control!.instance ? x : null;
    }, 10_000);
    expect(after.holder).not.toBe(bId);
  });
});
