import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { subjects } from "../../contracts/index.ts";
import { namedDatabase, pgClient } from "../helpers/database.ts";
import { testPrefix } from "../helpers/env.ts";
import { until } from "../helpers/platform.ts";
import { freePortBlock, releasePortBlock, waitPort } from "../helpers/ports.ts";

// Issue 12, point 1, as README tells a person to run it: `npm start -- --cluster --demo` starts three
// nats-servers clustered on this machine (none running at NATS_URL's ports), makes every stream and
// bucket with three replicas, and the demo's sessions complete on it; Ctrl-C stops the platform and
// the three servers it started. Run from a folder of its own (the servers' stores go under its
// `.data/nats-cluster/`), with its own database, prefix and ports.

const root = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "vt-cluster-demo-"));
const prefix = testPrefix();
// cli/local-cluster.ts: a server's route port is its client port + 2000, its monitoring port + 4000.
const ROUTE_OFFSET = 2000;
const MONITOR_OFFSET = 4000;

const free = (port: number) =>
  new Promise<boolean>((r) => {
    const s = createServer();
    s.once("error", () => r(false));
    s.listen(port, "127.0.0.1", () => s.close(() => r(true)));
  });

/** Three client ports whose route and monitoring ports are free too (outside the block helper's width). */
async function clusterPorts(): Promise<{ base: number; ports: number[] }> {
  for (let i = 0; i < 20; i++) {
    const base = await freePortBlock([0, 1, 2]);
    const ports = [base, base + 1, base + 2];
    const others = ports.flatMap((p) => [p + ROUTE_OFFSET, p + MONITOR_OFFSET]);
    if ((await Promise.all(others.map(free))).every(Boolean)) return { base, ports };
    releasePortBlock(base);
  }
  throw new Error("no three client ports with free route and monitoring ports");
}

let child: ChildProcess | null = null;
let base = 0;
let httpPort = 0;
let db: Awaited<ReturnType<typeof namedDatabase>> | null = null;

afterAll(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  // The servers run in their own process group (cli/local-cluster.ts): if the demo did not stop
  // them, they are found by their configuration's path, which is under this file's folder.
  spawnSync("pkill", ["-KILL", "-f", dir]);
  if (base) releasePortBlock(base);
  if (httpPort) releasePortBlock(httpPort);
  await db?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("npm start -- --cluster --demo", () => {
  it("starts three clustered nats-servers, runs the demo at replicas 3 with sessions completing, and Ctrl-C stops the servers it started", async () => {
    const c = await clusterPorts();
    base = c.base;
    const natsUrl = c.ports.map((p) => `nats://127.0.0.1:${p}`).join(",");
    db = await namedDatabase();
    const http = (httpPort = await freePortBlock([0]));
    // node with tsx's loader (not the tsx command, which SIGKILLs a platform slow to answer a
    // signal: see pg-ha-demo), and cwd the test's folder: tsx resolved from the repository.
    child = spawn(process.execPath, ["--import", pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href, join(root, "cli/main.ts"), "--cluster", "--demo", "--terminals", "4", "--log", join(dir, "demo.log")], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        NATS_URL: natsUrl,
        DATABASE_URL: db.url,
        VEND_PREFIX: prefix,
        PORT: String(http),
        HOST: "127.0.0.1",
        STREAM_MAX_BYTES: String(16 * 2 ** 20),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child!.once("exit", r));
    const told = () => {
      let log = "";
      try {
        log = readFileSync(join(dir, "demo.log"), "utf8").split("\n").slice(-30).join("\n");
      } catch {
        log = "(no log)";
      }
      return `${out.slice(-2000)}\n--- demo.log:\n${log}`;
    };
    const whileRunning = <T>(p: Promise<T>) => Promise.race([p, exited.then((code): never => { throw new Error(`the demo exited (${code}):\n${told()}`); })]);

    try {
      await whileRunning(until(async () => out.includes("users charging at random"), 150_000, 200));
      expect(out).toMatch(/started here under \.data\/ \(NATS cluster \(3 of 3 servers\)/);
      // Three servers of one cluster, each with its store under the folder's .data/nats-cluster/.
      for (const p of c.ports) {
        const v = (await (await fetch(`http://127.0.0.1:${p + MONITOR_OFFSET}/varz`)).json()) as { cluster?: { name?: string }; jetstream?: { config?: { store_dir?: string } } };
        expect(v.cluster?.name).toBe("voltvend-local");
        expect(v.jetstream?.config?.store_dir).toContain(join(dir, ".data", "nats-cluster"));
      }

      // Every stream and KV bucket of the platform has three replicas, each current on its server.
      const nc = await connect({ servers: natsUrl.split(",") });
      try {
        const jsm = await jetstreamManager(nc);
        const s = subjects(prefix);
        const names: string[] = [];
        for await (const si of jsm.streams.list()) {
          if (!si.config.name.startsWith(`${prefix}_`) && !si.config.name.startsWith(`KV_${prefix}_`)) continue;
          names.push(si.config.name);
          expect({ stream: si.config.name, replicas: si.config.num_replicas }).toEqual({ stream: si.config.name, replicas: 3 });
          expect({ stream: si.config.name, peers: si.cluster?.replicas?.length }).toEqual({ stream: si.config.name, peers: 2 });
        }
        expect(names).toEqual(expect.arrayContaining([s.streams.telemetry, s.streams.control, `KV_${s.buckets.leases}`]));
      } finally {
        await nc.close();
      }

      // The demo's users charge: sessions complete and are billed, on the cluster.
      await using pgc = await pgClient(db.url);
      const done = await whileRunning(
        until(async () => {
          const r = await pgc.query<{ n: number }>("SELECT count(*)::int AS n FROM sessions WHERE state = 'completed'");
          return r.rows[0]!.n >= 2 ? r.rows[0]!.n : null;
        }, 150_000, 1000),
      );
      expect(done).toBeGreaterThanOrEqual(2);
      const billed = await pgc.query<{ n: number }>("SELECT count(DISTINCT session_id)::int AS n FROM wallet_ledger WHERE kind = 'capture'");
      expect(billed.rows[0]!.n).toBeGreaterThan(0);

      // Ctrl-C: a clean stop, and the servers this command started are gone with it.
      child.kill("SIGINT");
      const code = await Promise.race([exited, new Promise<"late">((r) => setTimeout(() => r("late"), 90_000))]);
      expect(code, told()).toBe(0);
      await Promise.all(c.ports.map((p) => waitPort(p, false, 30_000)));
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  }, 420_000);
});
