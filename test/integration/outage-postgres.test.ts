import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGateway, type Gateway } from "../../cli/index.ts";
import { signToken } from "../../control/index.ts";
import { pgClient, testDatabase } from "../helpers/database.ts";
import { NATS_URL, PG_ADMIN_URL, testPrefix } from "../helpers/env.ts";
import { platformProcess, type PlatformProcess } from "../helpers/platform-process.ts";
import { removeNatsState, SECRET, seedFleet, until, type TestPlatform } from "../helpers/platform.ts";
import { tcpProxy, type TcpProxy } from "../helpers/tcp-proxy.ts";

// The platform as a process of its own, reaching PostgreSQL through a proxy this test controls,
// under HTTP load and telemetry. PostgreSQL is taken away twice: every backend of the test's
// database terminated, several times; then the proxy cut for seconds. The process must stay
// alive, answer 2xx (or the calls' usual 4xx) or 503 `unavailable`, never 500, and work after.

const TERMINALS = Array.from({ length: 8 }, (_, i) => `T${i + 1}`);

let db: Awaited<ReturnType<typeof testDatabase>>;
let prefix: string;
let proxy: TcpProxy;
let platform: PlatformProcess;
let gwNc: NatsConnection;
let gw: Gateway;
let admin: string;
let user: string;

interface Answer {
  call: string;
  status: number;
  code?: string;
}

async function api(method: string, path: string, body?: unknown, token = admin): Promise<{ status: number; body: any }> {
  const res = await fetch(platform.url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : null,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Each of `workers` loops calls in turn what reads and writes the database, until stopped. */
function load(workers: number) {
  const answers: Answer[] = [];
  let stopped = false;
  let n = 0;
  const calls: [string, () => Promise<{ status: number; body: any }>][] = [
    ["topup", () => api("POST", "/v1/admin/users/U1/topups", { amountCents: 1, reference: `load-${n++}` })],
    ["me", () => api("GET", "/v1/me", undefined, user)],
    ["terminal", () => api("GET", "/v1/terminals/T1")],
    ["readings", () => api("GET", "/v1/admin/terminals/T2/readings?limit=10")],
    ["charge", () => api("POST", "/v1/charge-requests", { qr: `qr-T${1 + (n++ % TERMINALS.length)}`, target: { energyWh: 1 }, payment: "prepaid" }, user)],
  ];
  const loop = async (w: number) => {
    for (let i = w; !stopped; i++) {
      const [call, f] = calls[i % calls.length]!;
      try {
        const r = await f();
        answers.push({ call, status: r.status, code: r.body?.error?.code });
      } catch (e) {
        answers.push({ call, status: 0, code: String(e) });
      }
    }
  };
  const running = Array.from({ length: workers }, (_, w) => loop(w));
  return {
    answers,
    async stop() {
      stopped = true;
      await Promise.all(running);
    },
  };
}

/** Every backend of this test's database (and only it), ended by the server. */
async function terminateBackends(): Promise<number> {
  await using c = await pgClient(PG_ADMIN_URL);
  const r = await c.query("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1::text", [db.name]);
  return Number(r.rows[0].n);
}

/** How many connections this test's database has now (the platform's, through the proxy). */
async function backends(): Promise<number> {
  await using c = await pgClient(PG_ADMIN_URL);
  return Number((await c.query("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1::text", [db.name])).rows[0].n);
}

const readyz = async () => (await fetch(`${platform.url}/readyz`)).status;

beforeAll(async () => {
  db = await testDatabase();
  prefix = testPrefix();
  const pgUrl = new URL(PG_ADMIN_URL);
  proxy = await tcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432));
  const viaProxy = new URL(db.url);
  viaProxy.port = String(proxy.port);
  platform = await platformProcess({
    DATABASE_URL: viaProxy.toString(),
    NATS_URL,
    VEND_PREFIX: prefix,
    VEND_JWT_SECRET: SECRET,
    LOG_LEVEL: "warn",
    STREAM_MAX_BYTES: String(64 * 2 ** 20),
    CONTROL_TICK_MS: "100",
    // A request waits only a second for the database before its 503 (the default waits out a
    // failover for 20 s: pg-failover.test.ts); what this test checks is the answer while it is gone.
    DB_FAILOVER_WAIT_MS: "1000",
    // The load loops call as fast as answers come back; the rate limits are not what is tested here.
    RATE_LIMIT_PUBLIC_MAX: "1000000",
    RATE_LIMIT_PRINCIPAL_MAX: "1000000",
  });
  admin = await signToken(SECRET, "admin1", "admin");
  user = await signToken(SECRET, "U1", "user");
  await seedFleet({ api } as unknown as TestPlatform, { terminals: TERMINALS });
  gwNc = await connect({ servers: NATS_URL });
  gw = createGateway({ nc: gwNc, prefix, gatewayId: "G1", tickMs: 100, onError: () => {} });
  for (const t of TERMINALS) gw.addTerminal(t);
  await gw.flush();
  gw.start();
  expect((await api("POST", "/v1/admin/users/U1/topups", { amountCents: 100_000, reference: "seed" })).status).toBe(201);
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await gwNc?.close();
  await platform?.stop();
  await proxy?.[Symbol.asyncDispose]();
  await removeNatsState(prefix);
  await db?.[Symbol.asyncDispose]();
});

describe("PostgreSQL goes away under load", () => {
  it("the process stays alive, answers 503 unavailable (never 500) while it is gone, and works after", async () => {
    await until(async () => (await readyz()) === 200, 30_000, 200);
    const storedSince = async (from: number) => (await api("GET", `/v1/admin/terminals/T3/readings?from=${from}&limit=10`)).body?.readings?.length ?? 0;
    await until(async () => (await storedSince(1)) > 0, 30_000, 200);

    const traffic = load(6);
    // Let the load reach the database first (charges in flight, outbox rows, batches of readings).
    await until(async () => traffic.answers.length > 100, 30_000, 50);

    // 1. Every backend of the test's database terminated, five times.
    let terminated = 0;
    for (let i = 0; i < 5; i++) {
      terminated += await terminateBackends();
      // The platform connects again (under load, at once): the next round has backends to end.
      await until(async () => (await backends()) > 0, 15_000, 100);
      expect(platform.exited(), platform.output().slice(-3000)).toBeNull();
    }
    expect(terminated).toBeGreaterThan(5);

    // 2. The network to PostgreSQL cut for a few seconds: readiness says so from a real query.
    const before = traffic.answers.length;
    await proxy.cut();
    try {
      await until(async () => (await readyz()) === 503, 15_000, 200);
      await until(async () => traffic.answers.slice(before).some((a) => a.status >= 500), 15_000, 100);
      // A window, not a wait for something: readiness stays 503 while the database is gone, not only at first.
      await new Promise((r) => setTimeout(r, 1500));
      expect(await readyz()).toBe(503);
    } finally {
      await proxy.restore();
    }
    const restoredAt = Date.now();

    await until(async () => (await readyz()) === 200, 30_000, 200);
    // The load goes on a little after the database came back, and succeeds again.
    const after = traffic.answers.length;
    await until(async () => traffic.answers.slice(after).filter((a) => a.status >= 200 && a.status < 300).length > 50, 30_000, 100);
    await traffic.stop();
    const tally: Record<string, number> = {};
    for (const a of traffic.answers) {
      const k = `${a.call} ${a.status}${a.code ? ` ${a.code}` : ""}`;
      tally[k] = (tally[k] ?? 0) + 1;
    }

    expect(platform.exited(), platform.output().slice(-4000)).toBeNull();
    const failed = traffic.answers.filter((a) => a.status >= 500 || a.status === 0);
    const notUnavailable = failed.filter((a) => !(a.status === 503 && a.code === "unavailable"));
    expect(notUnavailable, JSON.stringify(tally)).toEqual([]);
    // The outage was felt (some 503) and everything else was the calls' ordinary answers.
    expect(failed.length).toBeGreaterThan(0);
    const unexpected = traffic.answers.filter(
      (a) => a.status >= 400 && a.status < 500 && !(a.call === "charge" && ["terminal_busy", "terminal_offline"].includes(a.code ?? "")),
    );
    expect(unexpected, JSON.stringify(unexpected.slice(0, 10))).toEqual([]);

    // Everything works again: a fresh top-up, readings stored again, and a charge billed to its end.
    expect((await api("POST", "/v1/admin/users/U1/topups", { amountCents: 5, reference: "after" })).status).toBe(201);
    await until(async () => (await storedSince(restoredAt)) > 0, 30_000, 200);
    const idle = await until(async () => {
      for (const t of TERMINALS) {
        const r = await api("POST", "/v1/charge-requests", { qr: `qr-${t}`, target: { energyWh: 1 }, payment: "prepaid" }, user);
        if (r.status === 201) return r.body.sessionId as string;
      }
      return null;
    }, 30_000, 200);
    const done = await until(async () => {
      const r = await api("GET", `/v1/sessions/${idle}`, undefined, user);
      return r.body.state === "completed" || r.body.state === "failed" ? r.body : null;
    }, 30_000, 100);
    expect(done).toMatchObject({ state: "completed", stopReason: "target_reached" });
    expect(platform.exited(), platform.output().slice(-4000)).toBeNull();
  }, 180_000);
});
