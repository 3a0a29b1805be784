import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { Gateway } from "../cli/index.ts";
import { signToken } from "../control/index.ts";
import { natsServers } from "../contracts/index.ts";

export const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
export const PG_BASE = process.env.BENCH_PG ?? "postgres://postgres@127.0.0.1:5432";
export const SECRET = "bench-secret-0123456789abcdef";

export interface PlatformProcess {
  url: string;
  prefix: string;
  db: string;
  admin: string;
  /** Each platform process: its parts and pid (for its resident memory). */
  processes(): { parts: string; pid: number | undefined }[];
  call(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/** The platform in a process of its own (as `npm start` runs it), so the load generator does not share its event loop. */
/**
 * The charging benchmarks' registry: region R1 (one flat tariff of 100 cents/kWh), franchisee F1,
 * and `users` users BU0... with `amountCents` each; returns their tokens, in order. Many users, as
 * in the field: one wallet for every session would serialise them all on its lock.
 */
export async function seedChargingNetwork(p: PlatformProcess, o: { users: number; amountCents: number }): Promise<string[]> {
  await p.call("PUT", "/v1/admin/regions/R1", { name: "Bench", timezone: "Asia/Shanghai" });
  await p.call("PUT", "/v1/admin/franchisees/F1", { name: "Bench" });
  await p.call("PUT", "/v1/admin/regions/R1/tariff", { effectiveFrom: 0, periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100 }] });
  const users: string[] = [];
  for (let u = 0; u < o.users; u += 50)
    await Promise.all(
      Array.from({ length: Math.min(50, o.users - u) }, async (_, j) => {
        users[u + j] = await signToken(SECRET, `BU${u + j}`, "user", 86_400);
        await p.call("POST", `/v1/admin/users/BU${u + j}/topups`, { amountCents: o.amountCents, reference: "bench" });
      }),
    );
  return users;
}

export async function startPlatformProcess(
  name: string,
  port: number,
  env: Record<string, string> = {},
  /** Parts per process, as an operator splits them across cores; the first must include control. */
  split: string[] = ["control,cutoff,faults,writer"],
): Promise<PlatformProcess> {
  const prefix = `bench_${name}_${Date.now().toString(36)}`;
  const db = prefix;
  const spawnPart = (parts: string) =>
    // BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles each platform process.
    spawn(process.execPath, [...(process.env.BENCH_NODE_ARGS?.split(" ").filter(Boolean) ?? []), "--import", "tsx", "cli/main.ts", "--parts", parts], {
      env: { ...process.env, NATS_URL, DATABASE_URL: `${PG_BASE}/${db}`, PORT: String(port), HOST: "127.0.0.1", VEND_PREFIX: prefix, VEND_JWT_SECRET: SECRET, LOG_LEVEL: "warn", STREAM_MAX_BYTES: String(256 * 2 ** 20), METRICS_PORT: "0", ...env },
      stdio: ["ignore", "inherit", "inherit"],
    });
  const children: ChildProcess[] = [spawnPart(split[0]!)];
  // The platform dies with the benchmark: left running, it would keep consuming and spoil the next run.
  const killAll = () => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill("SIGKILL"));
  process.once("exit", killAll);
  const partsOf = new Map<ChildProcess, string>([[children[0]!, split[0]!]]);
  const child = children[0]!;
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > end || child.exitCode !== null) throw new Error("platform did not start");
    await new Promise((r) => setTimeout(r, 200));
  }
  // The other processes start once the first has migrated and made the topology.
  for (const parts of split.slice(1)) {
    const c = spawnPart(parts);
    partsOf.set(c, parts);
    children.push(c);
  }
  await new Promise((r) => setTimeout(r, 3000));
  const admin = await signToken(SECRET, "bench-admin", "admin", 86_400);
  return {
    url,
    prefix,
    db,
    admin,
    processes: () => children.map((c) => ({ parts: partsOf.get(c)!, pid: c.pid })),
    async call(method, path, body, token = admin) {
      const r = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        body: body !== undefined ? JSON.stringify(body) : null,
        // A starved platform that never answers fails the call rather than hang the benchmark.
        signal: AbortSignal.timeout(60_000),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : undefined };
    },
    async stop() {
      await Promise.all(
        children.map(async (c) => {
          // Ended already (a benchmark's kill -9 ends it with a signal, its exitCode null).
          if (c.exitCode !== null || c.signalCode !== null) return;
          const exited = new Promise((r) => c.once("exit", r));
          c.kill("SIGTERM");
          await exited;
        }),
      );
      process.removeListener("exit", killAll);
      const nc = await connect({ servers: natsServers(env.NATS_URL ?? NATS_URL) });
      const jsm = await jetstreamManager(nc);
      for await (const si of jsm.streams.list()) {
        if (si.config.name.startsWith(`${prefix}_`) || si.config.name.startsWith(`KV_${prefix}_`)) await jsm.streams.delete(si.config.name);
      }
      await nc.close();
      const c = new pg.Client({ connectionString: `${PG_BASE}/postgres` });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Resident memory of a process in MiB (Linux), or NaN. */
export function rssMiB(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : NaN;
  } catch {
    return NaN;
  }
}

/** CPU time (user + system) a process has used so far, in ms (Linux), or NaN. */
export function cpuMs(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 (utime, stime), in clock ticks (100 a second on Linux).
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

/**
 * Time a process's main thread has spent waiting for a core while it could run, in ms (Linux schedstat), or NaN:
 * on a shared machine, what it wanted and did not get.
 */
export function runQueueWaitMs(pid: number | undefined): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[1]) / 1e6;
  } catch {
    return NaN;
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function machine() {
  return { node: process.version, cpus: (globalThis as any).navigator?.hardwareConcurrency ?? null, platform: process.platform };
}

/** COPYs text-format rows (each ending in a newline) in 64 KB chunks. */
export async function copy(c: pg.Client | pg.PoolClient, sql: string, rows: Iterable<string>): Promise<void> {
  const chunks = function* () {
    let buf = "";
    for (const r of rows) {
      buf += r;
      if (buf.length > 1 << 16) {
        yield buf;
        buf = "";
      }
    }
    if (buf) yield buf;
  };
  await pipeline(Readable.from(chunks()), c.query(copyFrom(sql)));
}

/** A benchmark's live session on a terminal: its target, and when a reading first reached it. */
export interface TargetWatch {
  sessionId: string;
  targetWh: number;
  reachedAt?: number;
}

/**
 * Notes the moment (`sent`, when the reading left) that a reading of a terminal with a session
 * first reaches the session's target, counted from the terminal's own power_on_ack register.
 */
export function noteTargetReached(
  gw: Gateway,
  sessions: Map<string, TargetWatch>,
  r: { terminalId: string; state: string; energyWh: number },
  sent: number,
): void {
  const s = sessions.get(r.terminalId);
  if (!s || s.reachedAt !== undefined) return;
  const on = gw.terminals.get(r.terminalId)!.events.findLast((e) => e.type === "power_on_ack" && e.sessionId === s.sessionId);
  if (on?.type === "power_on_ack" && r.state === "on" && r.energyWh - on.energyWh >= s.targetWh) s.reachedAt = sent;
}
