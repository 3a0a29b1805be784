import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import pg from "pg";
import { natsServers } from "../contracts/index.ts";
import { copy, NATS_URL, PG_BASE, startPlatformProcess, type PlatformProcess } from "./harness.ts";

const TERMINALS = 1000;
const PER_GATEWAY = 50;
// A week back, so every round's timestamps stay in the past (the platform refuses readings from the future).
const T0 = Date.now() - 7 * 86_400_000;

function readingJson(i: number, t: number, withTerminal: boolean): string {
  // Idle terminals (relay off, no current): a relay on without a session would be a fault on every
  // terminal, and the run would measure a fault storm rather than ingest.
  const base = { ts: T0 + i * 1000, seq: i, state: "off", currentA: 0, voltageV: 220.5, powerW: 0, energyWh: 1000 };
  return JSON.stringify(withTerminal ? { terminalId: `T${t}`, ...base } : base);
}

/** (a) How fast this machine COPYs reading-shaped rows into PostgreSQL, with nothing else running. */
export async function rawCopy(rows: number): Promise<number> {
  const db = `bench_raw_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${db}`);
  const c = new pg.Client({ connectionString: `${PG_BASE}/${db}` });
  await c.connect();
  try {
    await c.query(`CREATE TABLE r (terminal_id text, ts timestamptz, gateway_id text, seq bigint, relay_on boolean, current_a real,
      voltage_v real, power_w real, energy_mwh bigint, session_id text, received_at timestamptz, PRIMARY KEY (terminal_id, ts))`);
    const lines = function* () {
      for (let i = 0; i < rows; i++) {
        const t = i % TERMINALS;
        const ts = new Date(T0 + Math.floor(i / TERMINALS) * 1000).toISOString();
        yield `T${t}\t${ts}\tG${Math.floor(t / PER_GATEWAY)}\t${i}\tt\t16.8\t220.5\t3704.4\t${1_000_000 + i}\t\\N\t${ts}\n`;
      }
    };
    const start = performance.now();
    await copy(c, "COPY r FROM STDIN", lines());
    return rows / ((performance.now() - start) / 1000);
  } finally {
    await c.end();
    await admin.query(`DROP DATABASE ${db} WITH (FORCE)`);
    await admin.end();
  }
}

/** (a) How fast this machine's JetStream stores reading-sized messages published with core NATS. */
export async function rawPublish(url: string, messages: number): Promise<number> {
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  const name = `benchraw_${Date.now().toString(36)}`;
  await jsm.streams.add({ name, subjects: [`${name}.>`], max_bytes: 2 ** 30 });
  try {
    const payload = readingJson(1, 1, false);
    const start = performance.now();
    for (let i = 0; i < messages; i++) {
      nc.publish(`${name}.tel.G${i % 20}.T${i % TERMINALS}`, payload);
      if (i % 5000 === 4999) await nc.flush();
    }
    await nc.flush();
    for (;;) {
      const si = await jsm.streams.info(name);
      if (si.state.messages >= messages) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    return messages / ((performance.now() - start) / 1000);
  } finally {
    await jsm.streams.delete(name);
    await nc.close();
  }
}

async function registerFleet(p: PlatformProcess): Promise<void> {
  await p.call("PUT", "/v1/admin/regions/R1", { name: "Bench", timezone: "Asia/Shanghai" });
  await p.call("PUT", "/v1/admin/franchisees/F1", { name: "Bench" });
  for (let g = 0; g < TERMINALS / PER_GATEWAY; g++) await p.call("PUT", `/v1/admin/gateways/G${g}`, { regionId: "R1" });
  const all = Array.from({ length: TERMINALS }, (_, t) => t);
  for (let i = 0; i < all.length; i += 50)
    await Promise.all(
      all.slice(i, i + 50).map((t) =>
        p.call("PUT", `/v1/admin/terminals/T${t}`, { qr: `q${t}`, gatewayId: `G${Math.floor(t / PER_GATEWAY)}`, regionId: "R1", franchiseeId: "F1" }),
      ),
    );
}

async function count(db: pg.Client): Promise<number> {
  return (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM readings")).rows[0]!.n;
}

/**
 * (b) The platform's sustained rate: `total` readings published as fast as core NATS allows
 * (singles, or batches of `batch`), timed from the first publish until the last is committed.
 */
async function sustained(p: PlatformProcess, nc: NatsConnection, db: pg.Client, total: number, batch: number, round: number): Promise<number> {
  const before = await count(db);
  const perTerminal = total / TERMINALS;
  const base = round * 10_000; // distinct timestamps per round (10 000 s apart)
  const start = performance.now();
  let sent = 0;
  for (let k = 0; k < perTerminal; k++) {
    if (batch === 1) {
      for (let t = 0; t < TERMINALS; t++) {
        nc.publish(`${p.prefix}.tel.G${Math.floor(t / PER_GATEWAY)}.T${t}`, readingJson(base + k, t, false));
        if (++sent % 5000 === 0) await nc.flush();
      }
    } else {
      for (let g = 0; g < TERMINALS / PER_GATEWAY; g++) {
        const readings: string[] = [];
        for (let j = 0; j < PER_GATEWAY; j++) readings.push(readingJson(base + k, g * PER_GATEWAY + j, true));
        for (let o = 0; o < readings.length; o += batch)
          nc.publish(`${p.prefix}.telb.G${g}`, `{"readings":[${readings.slice(o, o + batch).join(",")}]}`);
        sent += PER_GATEWAY;
        if (sent % 5000 === 0) await nc.flush();
      }
    }
  }
  await nc.flush();
  const deadline = Date.now() + 180_000;
  while ((await count(db)) < before + total) {
    if (Date.now() > deadline) throw new Error(`only ${(await count(db)) - before} of ${total} readings stored`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return total / ((performance.now() - start) / 1000);
}

/** Reading visible in the database: stored_at minus the publish time, at a steady `rate`. */
async function visibility(p: PlatformProcess, nc: NatsConnection, db: pg.Client, rate: number, seconds: number) {
  const since = new Date();
  const perTick = Math.round(rate / 20);
  let seq = 5_000_000;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const tickStart = Date.now();
    for (let i = 0; i < perTick; i++) {
      const t = i % TERMINALS;
      seq++;
      nc.publish(`${p.prefix}.tel.G${Math.floor(t / PER_GATEWAY)}.T${t}`, JSON.stringify({ ts: Date.now(), seq, state: "off", currentA: 0, voltageV: 220, energyWh: 1000 }));
    }
    await nc.flush();
    await new Promise((r) => setTimeout(r, Math.max(0, 50 - (Date.now() - tickStart))));
  }
  await new Promise((r) => setTimeout(r, 3000));
  const r = await db.query(
    `SELECT count(*)::int AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - ts) * 1000) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - ts) * 1000) AS p99,
       max(extract(epoch FROM stored_at - ts) * 1000) AS max
     FROM readings WHERE stored_at >= $1 AND seq > 5000000`,
    [since],
  );
  return { rate, seconds, readings: r.rows[0].n, ms: { p50: Number(r.rows[0].p50), p99: Number(r.rows[0].p99), max: Number(r.rows[0].max) } };
}

export async function benchPlatformIngest(o: { port: number; natsUrl?: string; total: number; withVisibility: boolean; split?: string[]; env?: Record<string, string> }) {
  const p = await startPlatformProcess("ingest", o.port, { ...(o.natsUrl ? { NATS_URL: o.natsUrl } : {}), ...o.env }, o.split);
  const nc = await connect({ servers: natsServers(o.natsUrl ?? NATS_URL), noAsyncTraces: true });
  const db = new pg.Client({ connectionString: `${PG_BASE}/${p.db}` });
  await db.connect();
  try {
    await registerFleet(p);
    const singles = await sustained(p, nc, db, o.total, 1, 1);
    const batches = await sustained(p, nc, db, o.total, 50, 2);
    const vis = o.withVisibility ? await visibility(p, nc, db, 5000, 10) : null;
    return { singlesPerSecond: singles, batch50PerSecond: batches, visibility: vis };
  } finally {
    await db.end();
    await nc.close();
    await p.stop();
  }
}
