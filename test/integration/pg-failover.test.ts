import { connect, type NatsConnection } from "@nats-io/transport-node";
import { mkdtempSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pgClient } from "../helpers/database.ts";
import {
  down,
  formationState,
  formationUrl,
  killNode,
  nodeUrl,
  pgAutoctlInstalled,
  up,
  waitHealthy,
  type Formation,
  createGateway,
  type Gateway,
} from "../../cli/index.ts";
import { signToken } from "../../control/index.ts";
import { NATS_URL, RUN_ID, testPrefix } from "../helpers/env.ts";
import { platformProcess, type PlatformProcess } from "../helpers/platform-process.ts";
import { removeNatsState, SECRET, seedFleet, until, type TestPlatform } from "../helpers/platform.ts";
import { freePortBlock } from "../helpers/ports.ts";

// A pg_auto_failover formation of its own (monitor, primary, synchronous standby; cli/pg-ha.ts)
// under the platform as a process of its own, with charging load: top-ups, charge requests,
// sessions running. The primary is killed (-9, keeper and postgres). The standby must be primary
// within 30 s; every 2xx answered before the kill must have its effect after it; no capture or
// release twice; ledgers balance; every session ends at its target; /readyz 503 in the gap and
// 200 after; the platform process never exits.

const installed = pgAutoctlInstalled();
if (!installed) console.warn("pg-failover.test.ts skipped: pg_autoctl is not installed (apt-get install postgresql-15-auto-failover pg-auto-failover-cli; .ci/run does)");

const TERMINALS = Array.from({ length: 6 }, (_, i) => `T${i + 1}`);
const USERS = ["U1", "U2", "U3"];
const TARGET_WH = 12;

let f: Formation;
let prefix: string;
let platform: PlatformProcess;
let gwNc: NatsConnection;
let gw: Gateway;
let admin: string;
const tokens: Record<string, string> = {};
const dbName = `vt_${RUN_ID}_ha`;

async function api(method: string, path: string, body?: unknown, token = admin): Promise<{ status: number; body: any }> {
  const res = await fetch(platform.url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : null,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const readyz = async () => (await fetch(`${platform.url}/readyz`)).status;


interface Accepted {
  /** When the call was sent, and when its 2xx came. */
  sent: number;
  at: number;
  kind: "topup" | "charge";
  user: string;
  ref: string;
}

/** Workers that top up and start charges, keeping what got a 2xx and when; they retry nothing. */
function load(workers: number) {
  const accepted: Accepted[] = [];
  const answers: { sent: number; at: number; call: string; status: number; code?: string }[] = [];
  let stopped = false;
  let n = 0;
  const loop = async (w: number) => {
    for (let i = 0; !stopped; i++) {
      const user = USERS[(w + i) % USERS.length]!;
      const k = n++;
      const sent = Date.now();
      try {
        if (i % 2 === 0) {
          const ref = `ld-${k}`;
          const r = await api("POST", `/v1/admin/users/${user}/topups`, { amountCents: 3, reference: ref });
          answers.push({ sent, at: Date.now(), call: "topup", status: r.status, code: r.body?.error?.code });
          if (r.status === 201) accepted.push({ sent, at: Date.now(), kind: "topup", user, ref });
        } else {
          const qr = `qr-${TERMINALS[k % TERMINALS.length]}`;
          const r = await api("POST", "/v1/charge-requests", { qr, target: { energyWh: TARGET_WH }, payment: "prepaid" }, tokens[user]);
          answers.push({ sent, at: Date.now(), call: "charge", status: r.status, code: r.body?.error?.code });
          if (r.status === 201) accepted.push({ sent, at: Date.now(), kind: "charge", user, ref: r.body.sessionId });
        }
      } catch (e) {
        answers.push({ sent, at: Date.now(), call: "error", status: 0, code: String(e) });
      }
      // Paced, not a wait: a steady load of about 20 calls a second per worker.
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const running = Array.from({ length: workers }, (_, w) => loop(w));
  return {
    accepted,
    answers,
    async stop() {
      stopped = true;
      await Promise.all(running);
    },
  };
}

async function onNode(url: string, sql: string, params: unknown[] = []) {
  await using c = await pgClient(url);
  return (await c.query(sql, params)).rows;
}

describe.skipIf(!installed)("PostgreSQL failover under charging load (pg_auto_failover)", () => {
  beforeAll(async () => {
    const dir = mkdtempSync("/tmp/vt-pgha-");
    f = { dir, port: await freePortBlock([0, 1, 2]), nodes: 2 };
    await up(f);
    prefix = testPrefix();
    platform = await platformProcess({
      DATABASE_URL: formationUrl(f, dbName),
      NATS_URL,
      VEND_PREFIX: prefix,
      VEND_JWT_SECRET: SECRET,
      LOG_LEVEL: "warn",
      STREAM_MAX_BYTES: String(64 * 2 ** 20),
      CONTROL_TICK_MS: "100",
      MIN_TARGET_DURATION_S: "1",
      VEND_STORAGE: "plain",
      // Reports from the standby; requests wait out the failover and are done again (30 s here,
      // the bound this test allows a failover).
      READ_DATABASE_URL: formationUrl(f, dbName),
      DB_FAILOVER_WAIT_MS: "30000",
    });
    admin = await signToken(SECRET, "admin1", "admin");
    for (const u of USERS) tokens[u] = await signToken(SECRET, u, "user");
    await seedFleet({ api } as unknown as TestPlatform, { terminals: TERMINALS });
    gwNc = await connect({ servers: NATS_URL });
    gw = createGateway({ nc: gwNc, prefix, gatewayId: "G1", tickMs: 100, onError: () => {} });
    for (const t of TERMINALS) gw.addTerminal(t);
    await gw.flush();
    gw.start();
    for (const u of USERS) expect((await api("POST", `/v1/admin/users/${u}/topups`, { amountCents: 100_000, reference: "seed" })).status).toBe(201);
    await until(async () => (await api("GET", `/v1/terminals/${TERMINALS.at(-1)}`)).body?.state === "available", 30_000, 200);
  }, 240_000);

  afterAll(async () => {
    await gw?.stop();
    await gwNc?.close();
    await platform?.stop();
    await removeNatsState(prefix);
    if (f) await down(f, { destroy: true });
  }, 60_000);

  it("the standby takes over within 30 s; every acknowledged effect is there after; nothing twice; sessions end at their targets", async () => {
    const primary = await waitHealthy(f);
    const standby = (await formationState(f)).find((n) => n.name !== primary.name)!;
    expect(await readyz()).toBe(200);
    // Synchronous: a COMMIT on the primary waits for the standby's flush.
    const [rep] = await onNode(nodeUrl(f, primary.port - f.port), "SELECT sync_state, current_setting('synchronous_commit') AS commit FROM pg_stat_replication");
    expect(rep).toMatchObject({ commit: "on" });
    expect(["sync", "quorum"]).toContain(rep.sync_state);

    // Reports read from the standby, and say how old their data may be.
    const report = await fetch(`${platform.url}/v1/admin/reports/usage?groupBy=user`, { headers: { authorization: `Bearer ${admin}` } });
    expect(report.status).toBe(200);
    const lag = report.headers.get("vv-read-lag-ms");
    expect(lag, "the report says how old its data may be").toMatch(/^\d+$/);
    const readers = await onNode(
      nodeUrl(f, standby.port - f.port),
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'voltvend-reports' AND datname = $1",
      [dbName],
    );
    expect(readers[0].n, "the report pool is connected to the standby").toBeGreaterThan(0);

    const traffic = load(4);
    // Charging under way: sessions running and top-ups landing before the kill.
    await until(async () => traffic.accepted.filter((a) => a.kind === "charge").length >= 4 && traffic.accepted.length >= 20, 60_000, 100);
    const running = await until(async () => {
      const states = await Promise.all(traffic.accepted.filter((a) => a.kind === "charge").map((a) => api("GET", `/v1/sessions/${a.ref}`)));
      return states.filter((s) => s.body?.state === "active").length >= 2;
    }, 30_000, 200);
    expect(running).toBe(true);

    // Top-ups sent as the primary dies: killNode blocks this process while it kills, so they reach
    // the platform after the kill and are in flight across the whole failover.
    const burstSent = Date.now();
    const burst = Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        api("POST", `/v1/admin/users/${USERS[i % USERS.length]}/topups`, { amountCents: 1, reference: `burst-${i}` }).then(
          (r) => ({ ref: `burst-${i}`, user: USERS[i % USERS.length]!, status: r.status, code: r.body?.error?.code as string | undefined, at: Date.now() }),
          (e: unknown) => ({ ref: `burst-${i}`, user: USERS[i % USERS.length]!, status: 0, code: String(e), at: Date.now() }),
        ),
      ),
    );
    const killedAt = Date.now();
    killNode(f, primary.name);
    // The gap: readiness does a real round trip and says 503 until a new primary takes writes.
    let saw503 = false;
    const readyWatch = (async () => {
      while (Date.now() - killedAt < 60_000) {
        const s = await readyz().catch(() => 0);
        if (s === 503) saw503 = true;
        if (s === 200 && saw503) return Date.now();
        await new Promise((r) => setTimeout(r, 100));
      }
      return null;
    })();
    const promoted = await until(async () => {
      const s = await formationState(f).catch(() => []);
      const n = s.find((x) => x.name === standby.name);
      return n && ["wait_primary", "primary"].includes(n.current) ? Date.now() : null;
    }, 60_000, 100);
    const failoverMs = promoted - killedAt;
    expect(failoverMs, "the standby is primary within 30 s").toBeLessThan(30_000);
    const readyAgain = await readyWatch;
    expect(saw503, "/readyz said 503 in the gap").toBe(true);
    expect(readyAgain, "/readyz says 200 after").not.toBeNull();

    // The load goes on against the new primary and succeeds again.
    const after = traffic.accepted.length;
    await until(async () => traffic.accepted.slice(after).filter((a) => a.at > readyAgain!).length >= 10, 60_000, 100);
    await traffic.stop();
    // Reports too: no standby is left, they read from the new primary (its data current: lag 0).
    const reportAfter = await until(async () => {
      const r = await fetch(`${platform.url}/v1/admin/reports/usage?groupBy=user`, { headers: { authorization: `Bearer ${admin}` } });
      return r.status === 200 ? r : null;
    }, 30_000, 200);
    expect(reportAfter.headers.get("vv-read-lag-ms")).toBe("0");

    expect(platform.exited(), platform.output().slice(-4000)).toBeNull();
    // Work in flight at the kill was done again on the new primary, not refused: every call sent
    // before the kill and answered after it got its 2xx (or the call's usual busy/offline).
    // The burst sent at the kill: each done on the new primary (201), none refused with a 503.
    const sentAtKill = await burst;
    expect(sentAtKill.map((b) => b.status), JSON.stringify(sentAtKill)).toEqual(sentAtKill.map(() => 201));
    expect(sentAtKill.every((b) => b.at > killedAt && burstSent <= killedAt)).toBe(true);
    const inFlight = traffic.answers.filter((a) => a.sent < killedAt && a.at > killedAt);
    expect(
      inFlight.filter((a) => !(a.status >= 200 && a.status < 300) && !["terminal_busy", "terminal_offline"].includes(a.code ?? "")),
      JSON.stringify(inFlight),
    ).toEqual([]);
    // During the gap only 503 unavailable (or the calls' usual busy/offline), never 500.
    const bad = traffic.answers.filter(
      (a) => a.status === 0 || (a.status >= 500 && a.code !== "unavailable") || (a.status >= 400 && a.status < 500 && !["terminal_busy", "terminal_offline"].includes(a.code ?? "")),
    );
    expect(bad, JSON.stringify(bad.slice(0, 5))).toEqual([]);
    const newPrimary = nodeUrl(f, standby.port - f.port, dbName);

    // Every top-up answered 201 (before the kill too) is in the new primary's ledger, once.
    const topups = traffic.accepted.filter((a) => a.kind === "topup");
    const beforeKill = topups.filter((a) => a.at < killedAt);
    expect(beforeKill.length).toBeGreaterThan(5);
    const rows = await onNode(newPrimary, "SELECT user_id, reference, count(*)::int AS n FROM wallet_ledger WHERE kind = 'topup' GROUP BY 1, 2");
    const found = new Map(rows.map((r) => [`${r.user_id}/${r.reference}`, r.n as number]));
    for (const t of topups) expect(found.get(`${t.user}/${t.ref}`), `top-up ${t.ref} answered 201`).toBe(1);
    for (const b of sentAtKill) expect(found.get(`${b.user}/${b.ref}`), `top-up ${b.ref} sent at the kill`).toBe(1);

    // Every session answered 201 exists and ends at its target (the cloud's cut or the terminal's own limit).
    const charges = traffic.accepted.filter((a) => a.kind === "charge");
    expect(charges.filter((c) => c.at < killedAt).length).toBeGreaterThanOrEqual(4);
    for (const c of charges) {
      const s = await until(async () => {
        const r = await api("GET", `/v1/sessions/${c.ref}`);
        return r.status === 200 && ["completed", "failed"].includes(r.body.state) ? r.body : null;
      }, 90_000, 200);
      expect(s, `session ${c.ref}`).toMatchObject({ state: "completed" });
      expect(["target_reached", "limit"]).toContain(s.stopReason);
      expect(s.energyWh).toBeGreaterThanOrEqual(TARGET_WH);
      expect(s.energyWh).toBeLessThan(TARGET_WH + 1);
    }

    // Money: one hold and one capture per session, no release or capture twice; the cached
    // wallets equal their ledgers; nothing is left held.
    const perSession = await onNode(
      newPrimary,
      `SELECT session_id, count(*) FILTER (WHERE kind = 'hold')::int AS holds, count(*) FILTER (WHERE kind = 'capture')::int AS captures,
              count(*) FILTER (WHERE kind = 'release')::int AS releases FROM wallet_ledger WHERE session_id = ANY($1::text[]) GROUP BY 1`,
      [charges.map((c) => c.ref)],
    );
    expect(perSession.length).toBe(charges.length);
    for (const s of perSession) expect(s, s.session_id).toMatchObject({ holds: 1, captures: 1, releases: 0 });
    const wallets = await onNode(
      newPrimary,
      `SELECT u.user_id, u.balance_cents, u.held_cents, u.debt_cents, coalesce(sum(l.balance_delta), 0)::bigint AS lb,
              coalesce(sum(l.held_delta), 0)::bigint AS lh, coalesce(sum(l.debt_delta), 0)::bigint AS ld
         FROM users u LEFT JOIN wallet_ledger l USING (user_id) WHERE u.user_id = ANY($1::text[]) GROUP BY 1, 2, 3, 4`,
      [USERS],
    );
    expect(wallets.length).toBe(USERS.length);
    for (const w of wallets) {
      expect(Number(w.lb), w.user_id).toBe(Number(w.balance_cents));
      expect(Number(w.lh), w.user_id).toBe(Number(w.held_cents));
      expect(Number(w.ld), w.user_id).toBe(Number(w.debt_cents));
      expect(Number(w.held_cents), `${w.user_id} holds nothing once every session ended`).toBe(0);
    }
    expect(platform.exited(), platform.output().slice(-4000)).toBeNull();
    console.log(`pg failover: standby ${standby.name} primary ${failoverMs} ms after the kill; /readyz 200 again after ${readyAgain! - killedAt} ms; ${topups.length} top-ups, ${charges.length} sessions accepted; ${inFlight.length + sentAtKill.length} calls in flight at the kill, all done on the new primary`);
  }, 300_000);
});
