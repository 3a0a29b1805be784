import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { formationState, pgAutoctlInstalled, type Formation } from "../../cli/index.ts";
import { pgClient } from "../helpers/database.ts";
import { NATS_URL, testPrefix } from "../helpers/env.ts";
import { removeNatsState, until } from "../helpers/platform.ts";
import { freePort, freePortBlock } from "../helpers/ports.ts";

// The demo on the formation, as docs/backup-and-restore.md tells a person to run it: `npm run
// pg:ha -- up` prints DATABASE_URL with both data nodes, and `npm start -- --demo` runs on it
// (READ_DATABASE_URL the same list: reports from the standby). Its sessions complete on the
// primary and are on the standby. Then the primary is killed (`npm run pg:ha -- kill node1`) and
// the demo started again with the same DATABASE_URL, whose first host is now the dead node: it
// must start and charge on the new primary.

const installed = pgAutoctlInstalled();
if (!installed) console.warn("pg-ha-demo.test.ts skipped: pg_autoctl is not installed (apt-get install postgresql-15-auto-failover pg-auto-failover-cli; .ci/run does)");

const root = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "vt-pgha-demo-"));
// The formation's nodes run as the postgres user (cli/pg-ha.ts), which must reach its folder in here.
chmodSync(dir, 0o755);
let f: Formation | null = null;
const prefix = testPrefix();

/** `npm run -s <args>` in the repository; resolves with its output once it exits 0. */
function npm(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((res, rej) => {
    const child = spawn("npm", ["run", "-s", ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.once("exit", (code) => (code === 0 ? res(out) : rej(new Error(`npm run ${args.join(" ")} exited ${code}:\n${out.slice(-3000)}`))));
  });
}

interface Demo {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/**
 * `npm start -- --demo` (cli/main.ts, its summary as plain lines) on `databaseUrl`, in node with
 * tsx's loader rather than under the tsx command: that relays a signal to the platform and SIGKILLs
 * it when it has not answered within 30 ms (a busy event loop on this shared machine), so Ctrl-C's
 * clean stop could not be checked.
 */
async function demo(databaseUrl: string): Promise<Demo> {
  const child = spawn(process.execPath, ["--import", "tsx", "cli/main.ts", "--demo", "--terminals", "4", "--log", join(dir, "demo.log")], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      NATS_URL,
      DATABASE_URL: databaseUrl,
      READ_DATABASE_URL: databaseUrl,
      VEND_PREFIX: prefix,
      PORT: String(await freePort()),
      HOST: "127.0.0.1",
      STREAM_MAX_BYTES: String(64 * 2 ** 20),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out, exited: new Promise((r) => child.once("exit", r)) };
}

/** `p`, unless the demo exits first (a start that failed): then its output is the error. */
function whileRunning<T>(d: Demo, p: Promise<T>): Promise<T> {
  return Promise.race([p, d.exited.then((code): never => { throw new Error(`the demo exited (${code}):\n${told(d)}`); })]);
}

/**
 * Ctrl-C, and the demo's clean stop. It finishes the work in hand first; once in CI (load from the
 * whole suite, right after the failover) that took more than 30 s, the control service still
 * handling events meanwhile (cause not found: docs/backup-and-restore.md). A clean stop is what
 * is checked here, so it gets 90 s.
 */
async function stop(d: Demo): Promise<void> {
  d.child.kill("SIGINT");
  const code = await Promise.race([d.exited, new Promise<"late">((r) => setTimeout(() => r("late"), 90_000))]);
  if (code === "late") d.child.kill("SIGKILL");
  expect(code, told(d)).toBe(0);
}

/** The sessions a data node holds (its own view: a standby's replayed copy), all or the completed ones. */
async function sessions(url: string, state?: "completed"): Promise<string[]> {
  await using c = await pgClient(url);
  const r = await c.query<{ session_id: string }>("SELECT session_id FROM sessions WHERE $1::text IS NULL OR state = $1 ORDER BY session_id", [state ?? null]);
  return r.rows.map((x) => x.session_id);
}
const completed = (url: string) => sessions(url, "completed");

/** The demo's own output and the end of its log file, for an error. */
const told = (d: Demo) => `${d.output().slice(-2000)}\n--- demo.log:\n${readFileSync(join(dir, "demo.log"), "utf8").split("\n").slice(-30).join("\n")}`;

describe.skipIf(!installed)("the demo on a pg_auto_failover formation (npm run pg:ha -- up, npm start -- --demo)", () => {
  afterAll(async () => {
    if (f) await npm(["pg:ha", "--", "destroy", "--dir", f.dir, "--port", String(f.port)]).catch((e: Error) => console.warn(e.message));
    await removeNatsState(prefix);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("runs on the formation, its sessions on both nodes; and starts again after the first node died", async () => {
    const port = await freePortBlock([0, 1, 2]);
    const formationDir = join(dir, "pgha");
    f = { dir: formationDir, port, nodes: 2 };
    const printed = await npm(["pg:ha", "--", "up", "--dir", formationDir, "--port", String(port)]);
    const databaseUrl = /^DATABASE_URL=(\S+)$/m.exec(printed)?.[1];
    expect(databaseUrl, printed).toBe(`postgres://postgres@127.0.0.1:${port + 1},127.0.0.1:${port + 2}/voltvend`);
    const node = (i: number) => `postgres://postgres@127.0.0.1:${port + i}/voltvend`;

    const first = await demo(databaseUrl!);
    try {
      await whileRunning(first, until(async () => first.output().includes("users charging at random"), 120_000, 200));
      // Sessions complete on the primary (node1, the first registered) and the synchronous standby has them.
      const done = await whileRunning(first, until(async () => ((await completed(node(1)).catch(() => [])).length >= 2 ? completed(node(1)) : null), 150_000, 1000));
      await until(async () => (await completed(node(2))).filter((s) => done.includes(s)).length === done.length, 15_000, 200);
      await stop(first);
    } finally {
      if (first.child.exitCode === null) first.child.kill("SIGKILL");
    }

    // The first node dies; node2 is promoted. The same DATABASE_URL now starts with a dead host.
    await npm(["pg:ha", "--", "kill", "node1", "--dir", formationDir, "--port", String(port)]);
    await until(async () => (await formationState(f!)).some((n) => n.name === "node2" && ["wait_primary", "primary"].includes(n.current)), 60_000, 200);
    // Sessions the first demo left running end on their own (a silent terminal): only new ones count.
    const before = new Set(await sessions(node(2)));
    const second = await demo(databaseUrl!);
    try {
      await whileRunning(second, until(async () => second.output().includes("users charging at random"), 120_000, 200));
      await whileRunning(second, until(async () => (await completed(node(2))).some((s) => !before.has(s)), 150_000, 1000));
      expect(second.output()).not.toContain("not reachable");
      await stop(second);
    } finally {
      if (second.child.exitCode === null) second.child.kill("SIGKILL");
    }
  }, 480_000);
});
