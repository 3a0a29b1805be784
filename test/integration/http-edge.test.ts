import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { SignJWT } from "jose";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgClient } from "../helpers/database.ts";
import { NATS_URL } from "../helpers/env.ts";
import { SECRET, seedFleet, simGateway, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// The HTTP edge under hostile input (issue 11, holes 5 and 7): NUL bytes, targets too small to
// hold money for, absurd terminal profiles, eternal tokens, reused top-up references, who sees a
// scan-failure reporter, and event streams whose clients vanish.
let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let nc: NatsConnection;
let user: string;
let fr1: string;

beforeAll(async () => {
  tp = await testPlatform({ TERMINAL_OFFLINE_S: "5" });
  await seedFleet(tp, { terminals: ["T1", "T2", "T3"] });
  // A free tariff region: nothing to pay, but still nothing switches on for nothing held.
  await tp.api("PUT", "/v1/admin/regions/RF", { name: "Free", timezone: "UTC" });
  await tp.api("PUT", "/v1/admin/gateways/GF", { regionId: "RF" });
  await tp.api("PUT", "/v1/admin/terminals/TF", { qr: "qr-TF", gatewayId: "GF", regionId: "RF", franchiseeId: "FR1" });
  await tp.api("PUT", "/v1/admin/regions/RF/tariff", { effectiveFrom: 0, periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 0, timeCentsPerHour: 0 }] });
  nc = await connect({ servers: NATS_URL });
  gw = await simGateway(tp, { T1: {}, T2: {}, T3: {} }, { tickMs: 200 });
  user = await tp.token("U1", "user");
  fr1 = await tp.token("FR1", "franchisee");
  expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 10_000, reference: "seed" })).status).toBe(201);
  await until(async () => (await tp.api("GET", "/v1/terminals/T1")).body.state === "available");
});

afterAll(async () => {
  await gw?.stop();
  await nc?.close();
  await tp?.[Symbol.asyncDispose]();
});

const NUL = "\u0000";

describe("NUL bytes", () => {
  it("answer 400 in every kind of string (QR, ids in paths, reasons, references, names, queries), never 500", async () => {
    const admin = tp.admin;
    const cases: [string, string, unknown, string][] = [
      ["POST", "/v1/charge-requests", { qr: `qr-T1${NUL}`, target: { energyWh: 5 }, payment: "prepaid" }, user],
      ["POST", "/v1/scan-failures", { qr: `qr${NUL}`, reason: "x" }, user],
      ["POST", "/v1/scan-failures", { terminalId: "T1", reason: `smudged${NUL}` }, user],
      ["PUT", "/v1/admin/regions/RX", { name: `Region${NUL}`, timezone: "UTC" }, admin],
      ["PUT", "/v1/admin/regions/RX", { name: "Region", timezone: `UTC${NUL}` }, admin],
      ["PUT", "/v1/admin/franchisees/FRX", { name: `a${NUL}b` }, admin],
      ["PUT", "/v1/admin/terminals/TX", { qr: `q${NUL}`, gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" }, admin],
      ["PUT", "/v1/admin/franchisees/FR1/webhook", { url: "http://127.0.0.1:9/x", secret: `0123456789abcdef${NUL}` }, admin],
      ["POST", "/v1/admin/users/U1/topups", { amountCents: 1, reference: `ref${NUL}` }, admin],
      ["GET", "/v1/sessions/S-%00", undefined, user],
      ["POST", "/v1/sessions/S-%00/stop", undefined, user],
      ["GET", "/v1/sessions/S-%00/events", undefined, user],
      ["POST", "/v1/franchisee/faults/F-%00/ack", undefined, fr1],
      ["GET", "/v1/admin/terminals/T%00/readings", undefined, admin],
      ["GET", "/v1/franchisee/faults?status=open%00", undefined, fr1],
      ["GET", "/v1/admin/reports/usage?groupBy=user%00", undefined, admin],
      ["GET", "/v1/terminals/T1%00", undefined, user],
      ["GET", "/pages/x%00", undefined, user],
    ];
    const answers = [];
    for (const [method, path, body, token] of cases) {
      const r = await tp.api(method, path, body, token);
      answers.push({ method, path, status: r.status, code: r.body?.error?.code });
    }
    expect(answers.filter((a) => a.status !== 400)).toEqual([]);
    expect(answers.every((a) => a.code === "invalid_request")).toBe(true);
  });

  it("names where the NUL is, and is refused even where a schema does not look (nested, keys)", async () => {
    const r = await tp.api("POST", "/v1/scan-failures", { terminalId: "T1", reason: `a${NUL}` }, user);
    expect(r.body.error.details).toContainEqual(expect.objectContaining({ path: "body.reason" }));
    const nested = await tp.api("PUT", "/v1/admin/regions/R1/tariff", { periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 1, timeCentsPerHour: 0, note: `x${NUL}` }] });
    expect(nested.status).toBe(400);
    expect(nested.body.error.details).toContainEqual(expect.objectContaining({ path: "body.periods.0.note" }));
  });

  it("the OpenAPI document says so", async () => {
    const doc = (await tp.api("GET", "/openapi.json")).body;
    const reason = doc.paths["/v1/scan-failures"].post.requestBody.content["application/json"].schema.properties.reason;
    expect(reason.pattern).toBe("^[^\\u0000]*$");
  });
});

describe("minimum targets and holds", () => {
  it("refuses an energy target too small to hold a cent for, and a duration under the minimum", async () => {
    const broke = await tp.token("BROKE", "user");
    const tiny = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 1e-7 }, payment: "prepaid" }, broke);
    expect(tiny.status).toBe(400);
    expect(tiny.body.error.details[0].path).toMatch(/^body\.target/);
    expect((await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { amountCents: 0 }, payment: "prepaid" }, broke)).status).toBe(400);
    // 1 Wh is the smallest energy target; it still holds a cent, which this user does not have.
    const one = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 1 }, payment: "prepaid" }, broke);
    expect(one.status).toBe(402);
    expect(one.body.error.code).toBe("insufficient_balance");
    expect(gw.terminals.get("T1")!.commands).toEqual([]);
  });

  it("holds at least a cent even on a free tariff: no power for a user with no money", async () => {
    await using g = await simGateway(tp, { TF: {} }, { gatewayId: "GF", tickMs: 200 });
    await until(async () => (await tp.api("GET", "/v1/terminals/TF")).body.state === "available");
    const broke = await tp.token("BROKE2", "user");
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-TF", target: { energyWh: 5 }, payment: "prepaid" }, broke);
    expect(r.status).toBe(402);
    expect(g.terminals.get("TF")!.commands).toEqual([]);
    // A user with money holds one cent and pays nothing.
    const ok = await tp.api("POST", "/v1/charge-requests", { qr: "qr-TF", target: { energyWh: 1 }, payment: "prepaid" }, user);
    expect(ok.status).toBe(201);
    expect(ok.body.heldCents).toBe(1);
    const done = await until(async () => {
      const s = (await tp.api("GET", `/v1/sessions/${ok.body.sessionId}`, undefined, user)).body;
      return s.state === "completed" ? s : null;
    });
    expect(done.feeCents).toBe(0);
  });

  it("the shortest duration is MIN_TARGET_DURATION_S (1 s in this platform's configuration)", async () => {
    expect((await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { durationS: 0 }, payment: "prepaid" }, user)).status).toBe(400);
  });
});

describe("terminal profiles", () => {
  it("refuses a non-integer or absurd maxPowerW and other unbounded numbers", async () => {
    const base = { qr: "qr-T3", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" };
    for (const profile of [
      { maxPowerW: 4000.5 },
      { maxPowerW: 1e300 },
      { maxPowerW: 2_000_000 },
      { onCurrentA: [16, 1e300] },
      { offCurrentMaxA: 1e12 },
      { voltageV: [0, 1e9] },
      { faultDebounceS: 1e9 },
      { faultClearS: 1e12 },
    ]) {
      const r = await tp.api("PUT", "/v1/admin/terminals/T3", { ...base, profile });
      expect(r.status, JSON.stringify(profile)).toBe(400);
    }
  });

  it("a profile stored before the bounds gets the default for its bad field: duration charges do not fail", async () => {
    {
      await using db = await pgClient(tp.config.DATABASE_URL);
      await db.query(`UPDATE terminals SET profile = profile || '{"maxPowerW": 4000.5}'::jsonb WHERE terminal_id = 'T2'`);
    }
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T2", target: { durationS: 2 }, payment: "prepaid" }, user);
    expect(r.status).toBe(201);
    // 2 s at the default 4000 W and 100 c/kWh: 2.2 Wh, 0.22 cents, held as 1.
    expect(r.body.heldCents).toBe(1);
    await tp.api("POST", `/v1/sessions/${r.body.sessionId}/stop`, undefined, user);
    await until(async () => ["completed", "failed"].includes((await tp.api("GET", `/v1/sessions/${r.body.sessionId}`, undefined, user)).body.state));
  });
});

describe("token lifetime", () => {
  const sign = (claims: { exp: number; iat?: number }) => {
    const j = new SignJWT({ role: "user" }).setProtectedHeader({ alg: "HS256" }).setSubject("U1").setExpirationTime(claims.exp);
    return (claims.iat !== undefined ? j.setIssuedAt(claims.iat) : j).sign(new TextEncoder().encode(SECRET));
  };
  const now = () => Math.floor(Date.now() / 1000);

  it("refuses exp: 1e300 and any lifetime over 30 days; takes one within it", async () => {
    const answers = await Promise.all(
      [
        { exp: 1e300 },
        { exp: 1e300, iat: now() },
        { exp: now() + 31 * 86_400 },
        { exp: now() + 31 * 86_400, iat: now() },
        { exp: 1e300, iat: 1e300 - 10 }, // "issued" in the future
      ].map(async (c) => (await tp.api("GET", "/v1/me", undefined, await sign(c))).status),
    );
    expect(answers).toEqual([401, 401, 401, 401, 401]);
    expect((await tp.api("GET", "/v1/me", undefined, await sign({ exp: now() + 29 * 86_400, iat: now() }))).status).toBe(200);
  });
});

describe("top-up references", () => {
  it("the same reference with the same amount is 200 (credited once); with another amount 409", async () => {
    const first = await tp.api("POST", "/v1/admin/users/U7/topups", { amountCents: 500, reference: "bank-42" });
    expect(first.status).toBe(201);
    const again = await tp.api("POST", "/v1/admin/users/U7/topups", { amountCents: 500, reference: "bank-42" });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ credited: false, balanceCents: 500 });
    const other = await tp.api("POST", "/v1/admin/users/U7/topups", { amountCents: 50_000, reference: "bank-42" });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("reference_reused");
    expect((await tp.api("GET", "/v1/me", undefined, await tp.token("U7", "user"))).body.balanceCents).toBe(500);
  });
});

describe("scan-failure evidence", () => {
  it("names the reporting user to admins only: not on the franchisee's API, stream, NATS subject, webhook or package", async () => {
    const hooks: any[] = [];
    const receiver: Server = createServer((req, res) => {
      let b = "";
      req.on("data", (c) => (b += c));
      req.on("end", () => {
        hooks.push(JSON.parse(b));
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    const port = (receiver.address() as AddressInfo).port;
    expect((await tp.api("PUT", "/v1/admin/franchisees/FR1/webhook", { url: `http://127.0.0.1:${port}/hook`, secret: "0123456789abcdef" })).status).toBe(200);
    const onNats: any[] = [];
    const sub = nc.subscribe(`${tp.prefix}.fault.FR1.>`, { callback: (_e, m) => void onNats.push(m.json()) });
    await nc.flush();
    const before = await allConsumers();
    const stream = readEvents(fr1, (evs) => evs.some((e) => e.event === "fault" && e.data.kind === "scan_failure"));
    await until(async () => (await allConsumers()) > before);

    const r = await tp.api("POST", "/v1/scan-failures", { terminalId: "T3", reason: "camera could not read it" }, await tp.token("SPY-VICTIM", "user"));
    expect(r.status).toBe(202);
    const events = await stream;
    await until(async () => onNats.length > 0 && hooks.length > 0);
    const api = (await tp.api("GET", "/v1/franchisee/faults?status=open", undefined, fr1)).body.faults.find((f: any) => f.faultId === r.body.faultId);
    const terminals = (await tp.api("GET", "/v1/franchisee/terminals", undefined, fr1)).body.terminals.find((t: any) => t.terminalId === "T3");
    const pkg = (await tp.api("GET", `/v1/franchisee/package?from=${Date.now() - 3_600_000}&to=${Date.now() + 60_000}`, undefined, fr1)).body;
    const seen = {
      package: pkg.faults.find((f: any) => f.faultId === r.body.faultId).evidence,
      api: api.evidence,
      terminals: terminals.openFaults[0].evidence,
      sse: events.find((e) => e.event === "fault")!.data.evidence,
      nats: onNats[0].evidence,
      webhook: hooks[0].evidence,
    };
    for (const evidence of Object.values(seen)) expect(evidence).toEqual({ reason: "camera could not read it" });
    expect(JSON.stringify(seen)).not.toContain("SPY-VICTIM");

    const asAdmin = await tp.api("GET", `/v1/admin/faults/${r.body.faultId}`);
    expect(asAdmin.status).toBe(200);
    expect(asAdmin.body.evidence).toEqual({ reason: "camera could not read it", userId: "SPY-VICTIM" });
    expect((await tp.api("GET", `/v1/admin/faults/${r.body.faultId}`, undefined, fr1)).status).toBe(403);
    sub.unsubscribe();
    receiver.close();
  });
});

describe("the franchisee's fault stream", () => {
  it("deletes its consumer when the client goes, also abruptly and also mid-setup: the count returns to its baseline", async () => {
    // Streams of earlier tests are gone (their clients were); what remains is the platform's own.
    const baseline = await until(async () => {
      const n = await allConsumers();
      // A window, not a wait for something: the count holds still over it (earlier streams' consumers go asynchronously).
      await new Promise((r) => setTimeout(r, 300));
      return n === (await allConsumers()) ? { n } : null;
    }).then((b) => b.n);
    const url = new URL(`${tp.p.url}/v1/franchisee/faults/stream`);
    // In waves under the stream cap (20 by default): half are cut as soon as the answer starts,
    // half at once or a few milliseconds in, before the server has finished setting the stream up.
    for (let wave = 0; wave < 6; wave++) {
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          new Promise<void>((done) => {
            const req = request({ host: url.hostname, port: url.port, path: url.pathname, agent: false, headers: { authorization: `Bearer ${fr1}` } });
            req.on("error", () => done());
            req.on("close", () => done());
            if (i % 2 === 0) req.on("response", (res) => res.socket.destroy());
            else setTimeout(() => req.destroy(), i);
            req.end();
          }),
        ),
      );
      await until(async () => (await allConsumers()) === baseline, 10_000);
    }
    // Every slot of the cap came back too: a full set of streams opens again, each with its consumer.
    const open = await Promise.all(Array.from({ length: 20 }, () => fetchStream(fr1)));
    try {
      expect(open.map((o) => o.status)).toEqual(Array(20).fill(200));
      const counts: number[] = [];
      await until(async () => {
        counts.push(await allConsumers());
        return counts.at(-1) === baseline + 20;
      }, 10_000).catch((e) => {
        throw new Error(`${String(e)}; consumers seen: ${counts.slice(-10).join(",")}; streams ended: ${open.filter((o) => o.ended()).length}`);
      });
    } finally {
      for (const o of open) o.abort();
    }
    await until(async () => (await allConsumers()) === baseline, 10_000);
  });
});

async function allConsumers(): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(tp.p.subjects.streams.faults)).state.consumer_count;
}

async function fetchStream(token: string) {
  const ctl = new AbortController();
  const res = await fetch(`${tp.p.url}/v1/franchisee/faults/stream`, { headers: { authorization: `Bearer ${token}` }, signal: ctl.signal });
  let ended = false;
  void (async () => {
    try {
      for await (const _ of res.body as unknown as AsyncIterable<Uint8Array>);
    } catch {
      // aborted
    }
    ended = true;
  })();
  return { status: res.status, abort: () => ctl.abort(), ended: () => ended };
}

async function readEvents(token: string, stop: (events: { event: string; data: any }[]) => boolean, ms = 15_000) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ms);
  const events: { event: string; data: any }[] = [];
  try {
    const res = await fetch(`${tp.p.url}/v1/franchisee/faults/stream`, { headers: { authorization: `Bearer ${token}` }, signal: ctl.signal });
    let buf = "";
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += new TextDecoder().decode(chunk);
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (ev && data) events.push({ event: ev, data: JSON.parse(data) });
      }
      if (stop(events)) break;
    }
  } catch {
    // aborted: the events so far are the answer
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
  return events;
}
