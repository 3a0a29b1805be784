import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { pgClient } from "../helpers/database.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  archiveNow,
  backup,
  restore,
  type Restored,
  down,
  formationUrl,
  pgAutoctlInstalled,
  up,
  type Formation,
  startPlatform,
  type Platform,
  makeLogger,
} from "../../cli/index.ts";
import { loadConfig } from "../../contracts/index.ts";
import { signToken } from "../../control/index.ts";
import { NATS_URL, RUN_ID, testPrefix } from "../helpers/env.ts";
import { removeNatsState, SECRET, seedFleet, simGateway, until, type TestPlatform } from "../helpers/platform.ts";
import { freePortBlock } from "../helpers/ports.ts";

// pgBackRest on a formation of its own (cli/pg-ha.ts, cli/pg-backup.ts): a full backup, charging,
// an incremental, more charging; the platform stopped to mark a point in time T and the money
// and sessions read there; more top-ups after T. A restore to T into a new cluster must hold
// exactly what the original held at T: sessions, wallets, ledger entries; nothing after T.

const installed = pgAutoctlInstalled() && (await import("node:fs")).existsSync("/usr/bin/pgbackrest");
if (!installed) console.warn("pg-restore.test.ts skipped: pg_autoctl or pgbackrest is not installed (.ci/run installs them)");

const dbName = `vt_${RUN_ID}_bk`;
let f: Formation;
let p: Platform | null = null;
let prefix: string;
let restored: Restored | null = null;


const config = () =>
  loadConfig({
    NATS_URL,
    DATABASE_URL: formationUrl(f, dbName),
    PORT: "0",
    HOST: "127.0.0.1",
    VEND_PREFIX: prefix,
    VEND_JWT_SECRET: SECRET,
    LOG_LEVEL: "warn",
    STREAM_MAX_BYTES: String(64 * 2 ** 20),
    MIN_TARGET_DURATION_S: "1",
    // The formation's nodes preload TimescaleDB (pg:ha --timescaledb): the restore covers that
    // storage path (hypertables, their chunks); the failover test runs the plain one.
    VEND_STORAGE: "timescaledb",
  });

async function api(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(p!.url + path, {
    method,
    headers: { authorization: `Bearer ${token ?? (await signToken(SECRET, "admin1", "admin"))}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : null,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** The money and the sessions of a database, as one comparable text. */
async function moneyAndSessions(url: string): Promise<{ users: string; ledger: string; sessions: string; topups: number; readings: number; hypertable: boolean }> {
  await using c = await pgClient(url);
  const one = async (sql: string) => (await c.query<{ j: string }>(sql)).rows[0]!.j;
  return {
    users: await one("SELECT coalesce(json_agg(u ORDER BY user_id), '[]')::text AS j FROM users u"),
    ledger: await one("SELECT coalesce(json_agg(l ORDER BY entry_id), '[]')::text AS j FROM wallet_ledger l"),
    sessions: await one("SELECT coalesce(json_agg(s ORDER BY session_id), '[]')::text AS j FROM sessions s"),
    topups: Number((await c.query("SELECT count(*) AS n FROM wallet_ledger WHERE kind = 'topup'")).rows[0].n),
    readings: Number((await c.query("SELECT count(*) AS n FROM readings")).rows[0].n),
    hypertable: (await c.query("SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'readings'")).rowCount === 1,
  };
}

describe.skipIf(!installed)("pgBackRest: backups and a restore to a point in time", () => {
  beforeAll(async () => {
    f = { dir: mkdtempSync("/tmp/vt-pgbk-"), port: await freePortBlock([0, 1, 2, 9]), nodes: 2, timescaledb: true };
    await up(f);
    prefix = testPrefix();
    p = await startPlatform(config(), { log: makeLogger("warn") });
  }, 240_000);

  afterAll(async () => {
    await p?.stop();
    restored?.stop();
    await removeNatsState(prefix);
    if (f) await down(f, { destroy: true });
  }, 60_000);

  it("restores into a new cluster exactly the sessions and ledgers of the original at T", async () => {
    await seedFleet({ api } as unknown as TestPlatform, { terminals: ["T1", "T2"] });
    await using gw = await simGateway({ prefix } as unknown as TestPlatform, { T1: {}, T2: {} }, { tickMs: 100 });
    const user = await signToken(SECRET, "U1", "user");
    expect((await api("POST", "/v1/admin/users/U1/topups", { amountCents: 10_000, reference: "seed" })).status).toBe(201);
    await until(async () => (await api("GET", "/v1/terminals/T2")).body?.state === "available", 30_000, 200);
    await backup(f, "full");

    const charge = async (qr: string) => {
      const r = await api("POST", "/v1/charge-requests", { qr, target: { energyWh: 2 }, payment: "prepaid" }, user);
      expect(r.status).toBe(201);
      return r.body.sessionId as string;
    };
    const ended = (id: string) => until(async () => ["completed", "failed"].includes((await api("GET", `/v1/sessions/${id}`)).body?.state), 60_000, 200);
    const s1 = await charge("qr-T1");
    for (let i = 0; i < 5; i++) expect((await api("POST", "/v1/admin/users/U1/topups", { amountCents: 7, reference: `a${i}` })).status).toBe(201);
    await ended(s1);
    await backup(f, "incr");
    const s2 = await charge("qr-T2");
    for (let i = 0; i < 5; i++) expect((await api("POST", "/v1/admin/users/U1/topups", { amountCents: 11, reference: `b${i}` })).status).toBe(201);
    await ended(s2);

    // T: nothing writes (the platform stopped), the state read, the time taken after it.
    await p!.stop();
    p = null;
    const primaryUrl = formationUrl(f, dbName);
    const { primaryResolver } = await import("../../control/index.ts");
    const url = await primaryResolver(primaryUrl).primaryUrl();
    const atT = await moneyAndSessions(url);
    let T: string;
    {
      await using c = await pgClient(url);
      T = (await c.query<{ t: string }>("SELECT clock_timestamp()::text AS t")).rows[0]!.t;
    }
    expect(atT.topups).toBe(11);
    expect(JSON.parse(atT.sessions)).toHaveLength(2);
    expect(atT.hypertable, "readings are a TimescaleDB hypertable on the formation").toBe(true);
    expect(atT.readings).toBeGreaterThan(0);

    // After T: the platform again, more money moved.
    p = await startPlatform(config(), { log: makeLogger("warn") });
    for (let i = 0; i < 3; i++) expect((await api("POST", "/v1/admin/users/U1/topups", { amountCents: 13, reference: `c${i}` })).status).toBe(201);
    await ended(await charge("qr-T1"));
    await gw.stop();
    await p.stop();
    p = null;
    await archiveNow(f);

    restored = await restore(f, { to: join(f.dir, "restored"), port: f.port + 9, target: T });
    const back = await moneyAndSessions(restored.url(dbName));
    expect(back).toEqual(atT);
    // And the original has moved on since: the restore is not just the latest state.
    expect((await moneyAndSessions(url)).topups).toBe(14);
  }, 240_000);
});
