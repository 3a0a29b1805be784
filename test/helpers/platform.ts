import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import {
  makeLogger,
  startPlatform,
  type Platform,
  type PlatformOptions,
  createGateway,
  type Gateway,
  type TerminalOptions,
} from "../../cli/index.ts";
import { loadConfig, type Config } from "../../contracts/index.ts";
import { signToken, type Role } from "../../control/index.ts";
import { namedDatabase, testDatabase } from "./database.ts";
import { NATS_URL, testPrefix, type Engine } from "./env.ts";

export const SECRET = "test-secret-0123456789abcdef";

export interface TestPlatform extends AsyncDisposable {
  p: Platform;
  prefix: string;
  config: Config;
  api<T = any>(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: T }>;
  token(sub: string, role: Role): Promise<string>;
  admin: string;
  /** Restarts the platform's parts in place on the same database and prefix (a crash and restart). */
  restart(o?: PlatformOptions): Promise<void>;
}

/** A whole platform on the real servers, isolated by its own database and subject prefix. */
export async function testPlatform(
  env: Record<string, string> = {},
  o: PlatformOptions & { freshDatabase?: boolean } = {},
): Promise<TestPlatform> {
  // VEND_STORAGE=timescaledb: a database on the TimescaleDB server (TEST_TSDB_PG_URL). It is
  // migrated by the platform itself, as a fresh one is: the TimescaleDB path cannot be cloned from
  // a template while its background workers hold connections to it.
  const engine: Engine = env.VEND_STORAGE === "timescaledb" ? "timescaledb" : "plain";
  const db = o.freshDatabase || engine === "timescaledb" ? await namedDatabase(engine) : await testDatabase();
  const prefix = testPrefix();
  const config = loadConfig({
    NATS_URL,
    DATABASE_URL: db.url,
    PORT: "0",
    HOST: "127.0.0.1",
    VEND_PREFIX: prefix,
    VEND_JWT_SECRET: SECRET,
    LOG_LEVEL: "warn",
    STREAM_MAX_BYTES: String(64 * 2 ** 20),
    // Every process serves its own /metrics, /healthz and /readyz: on any free port here.
    METRICS_PORT: "0",
    // Tests stop duration targets after seconds, not the minute a real request must at least ask for.
    MIN_TARGET_DURATION_S: "1",
    ...env,
  });
  const log = makeLogger(config.LOG_LEVEL);
  let p: Platform;
  try {
    p = await startPlatform(config, { log, ...o });
  } catch (e) {
    await removeNatsState(prefix);
    await db[Symbol.asyncDispose]();
    throw e;
  }
  const admin = await signToken(SECRET, "admin1", "admin", 3600, {}, o.clock?.() ?? Date.now());
  const tp: TestPlatform = {
    get p() {
      return p;
    },
    prefix,
    config,
    admin,
    token: (sub, role) => signToken(SECRET, sub, role, 3600, {}, o.clock?.() ?? Date.now()),
    async api(method, path, body, token = admin) {
      const res = await fetch(p.url + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        body: body !== undefined ? JSON.stringify(body) : null,
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async restart(ro) {
      await p.stop();
      p = await startPlatform(config, { log, ...o, ...ro });
    },
    async [Symbol.asyncDispose]() {
      await p.stop();
      await removeNatsState(prefix);
      await db[Symbol.asyncDispose]();
    },
  };
  return tp;
}

/** Deletes the streams (and with them KV buckets) a prefix created. */
export async function removeNatsState(prefix: string): Promise<void> {
  const nc = await connect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  for await (const si of jsm.streams.list()) {
    const n = si.config.name;
    if (n.startsWith(`${prefix}_`) || n.startsWith(`KV_${prefix}_`)) await jsm.streams.delete(n);
  }
  await nc.close();
}

export const TZ = "Asia/Shanghai";

/** One region, franchisee, gateway and terminals with a flat or given tariff. */
export async function seedFleet(
  tp: TestPlatform,
  o: { terminals?: string[]; periods?: unknown[]; effectiveFrom?: number; timezone?: string; profile?: object } = {},
): Promise<void> {
  const ok = (r: { status: number; body: unknown }) => {
    if (r.status >= 300) throw new Error(`seed failed: ${r.status} ${JSON.stringify(r.body)}`);
  };
  ok(await tp.api("PUT", "/v1/admin/regions/R1", { name: "Region 1", timezone: o.timezone ?? TZ }));
  ok(await tp.api("PUT", "/v1/admin/franchisees/FR1", { name: "Franchisee 1" }));
  ok(await tp.api("PUT", "/v1/admin/gateways/G1", { regionId: "R1" }));
  for (const t of o.terminals ?? ["T1"]) {
    ok(await tp.api("PUT", `/v1/admin/terminals/${t}`, { qr: `qr-${t}`, gatewayId: "G1", regionId: "R1", franchiseeId: "FR1", ...(o.profile ? { profile: o.profile } : {}) }));
  }
  ok(
    await tp.api("PUT", "/v1/admin/regions/R1/tariff", {
      effectiveFrom: o.effectiveFrom ?? 0,
      periods: o.periods ?? [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100, timeCentsPerHour: 0 }],
    }),
  );
}

/** A simulated gateway (G1 unless named) on the platform's prefix, its terminals reading every `tickMs`. */
export async function simGateway(
  tp: TestPlatform,
  terminals: Record<string, Partial<TerminalOptions>>,
  o: { tickMs?: number; clock?: () => number; start?: boolean; gatewayId?: string } = {},
): Promise<Gateway & AsyncDisposable> {
  const nc = await connect({ servers: NATS_URL });
  const gw = createGateway({ nc, prefix: tp.prefix, gatewayId: o.gatewayId ?? "G1", tickMs: o.tickMs ?? 200, ...(o.clock ? { clock: o.clock } : {}) });
  for (const [id, b] of Object.entries(terminals)) gw.addTerminal(id, b);
  await gw.flush();
  if (o.start !== false) gw.start();
  const stop = gw.stop.bind(gw);
  return Object.assign(gw, {
    async stop() {
      await stop();
      await nc.close();
    },
    async [Symbol.asyncDispose]() {
      await stop();
      await nc.close();
    },
  });
}

/**
 * Waits until the platform has seen a reading of each of the gateway's terminals (their public
 * status is no longer `offline`): from then on a charge request on them is accepted. What a fixed
 * sleep after starting a gateway used to hope for. `ids`: the terminals to wait for (all of the gateway's).
 */
export async function terminalsSeen(tp: TestPlatform, gw: Pick<Gateway, "terminals">, ids: Iterable<string> = gw.terminals.keys(), ms = 15_000): Promise<void> {
  for (const id of ids) await until(async () => (await tp.api("GET", `/v1/terminals/${id}`)).body?.state !== "offline", ms);
}

/**
 * Waits until the telemetry stream's newest message on `subject` is the one `isIt` recognises (what
 * was published last there is stored), then until the durable consumer `durable` has acknowledged
 * everything up to it (the processors' stages stepped it, or the writer stored or dead-lettered
 * it). Messages published before it on the same connection are stored before it, so they are done
 * too. What a fixed sleep after publishing used to hope for.
 */
export async function steppedUpTo(tp: TestPlatform, durable: string, subject: string, isIt: (data: any) => boolean, ms = 15_000): Promise<void> {
  const jsm = await jetstreamManager(tp.p.nc);
  const stream = tp.p.subjects.streams.telemetry;
  const seq = await until(async () => {
    const m = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    return m && isIt(m.json()) ? m.seq : null;
  }, ms);
  await until(async () => (await jsm.consumers.info(stream, durable)).ack_floor.stream_seq >= seq, ms);
}

/** Polls until fn returns a truthy value (or throws after `ms`). */
export async function until<T>(fn: () => Promise<T | undefined | null | false>, ms = 15_000, every = 50): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`condition not met in ${ms} ms${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
