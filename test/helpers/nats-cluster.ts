import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePortBlock, releasePortBlock, waitPort } from "./ports.ts";

const BIN = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"].find(existsSync) ?? "nats-server";

/** Offsets from the port block's base: client ports 0-2, routes 3-5, monitoring (HTTP) 6-8. */
const CLIENT = 0;
const ROUTE = 3;
const HTTP = 6;

/** The monitoring endpoint's JSON, or null while the server does not answer. */
async function monitor(port: number, path: string): Promise<{ status: number; body: any } | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    return { status: r.status, body: await r.json().catch(() => null) };
  } catch {
    return null;
  }
}

export interface TestNatsCluster extends AsyncDisposable {
  /** Client URLs of the three servers, in order (index i is server i). */
  servers: string[];
  /** The same, comma-separated: what NATS_URL takes for a cluster. */
  url: string;
  /** The cluster's name (`cluster.name` in each server's configuration). */
  name: string;
  /** Each server's `server_name` (what JetStream reports as a stream's leader or replica). */
  names: string[];
  /** Each server's monitoring address (`/varz`: its resident memory as `mem`; `/jsz`; `/healthz`). */
  monitorUrls: string[];
  /** Whether server i's process runs now. */
  running(i: number): boolean;
  /** kill -9 of server i: no goodbye to its peers or clients; its store stays for start(i). */
  kill(i: number): Promise<void>;
  /** Starts server i again on its ports and store (after kill(i)); resolves once it listens. */
  start(i: number): Promise<void>;
  /** Resolves once the cluster has a JetStream meta leader (a server of the running ones). */
  waitMetaLeader(ms?: number): Promise<string>;
  /**
   * Resolves once server i says it is healthy (`/healthz`: JetStream on and its streams and
   * consumers current with their leaders): after start(i), the proof that it caught up.
   */
  waitHealthy(i: number, ms?: number): Promise<void>;
  /** The server_name of the meta leader as server i sees it, or null (none, or server i down). */
  metaLeader(i?: number): Promise<string | null>;
  /** Kills all three and removes their folders. */
  stop(): Promise<void>;
}

/**
 * Three private nats-servers of the test's own, with JetStream clustered on loopback (routes,
 * `server_name`, a store folder each in one temp dir), for tests that replicate streams (R3) and
 * kill servers. Resolves once a JetStream meta leader exists, so streams can be made at once.
 * `jetstream` is extra text for each server's jetstream block; `extra` for the top level.
 */
export async function natsCluster(o: { jetstream?: string; extra?: string } = {}): Promise<TestNatsCluster> {
  // One more try on fresh ports and folders when the first cluster elects no meta leader: seen once
  // in a loaded CI run; the error of each try keeps the servers' log tails, so the cause is not lost.
  try {
    return await oneCluster(o);
  } catch (first) {
    process.stderr.write(`natsCluster: ${(first as Error).message}\ntrying once more on other ports\n`);
    return await oneCluster(o);
  }
}

function logTails(dir: string): string {
  return [0, 1, 2]
    .map((i) => {
      let text = "";
      try {
        text = readFileSync(join(dir, `n${i}.log`), "utf8").split("\n").slice(-15).join("\n");
      } catch {
        text = "(no log)";
      }
      return `--- n${i}.log (last lines)\n${text}`;
    })
    .join("\n");
}

async function oneCluster(o: { jetstream?: string; extra?: string }): Promise<TestNatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), "vv-nats-cluster-"));
  const base = await freePortBlock([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  const name = `vv_c${base}`;
  const names = [0, 1, 2].map((i) => `${name}_n${i}`);
  const routes = [0, 1, 2].map((i) => `nats-route://127.0.0.1:${base + ROUTE + i}`);
  const confs = [0, 1, 2].map((i) => {
    const conf = join(dir, `n${i}.conf`);
    writeFileSync(
      conf,
      [
        `server_name: ${names[i]}`,
        `listen: 127.0.0.1:${base + CLIENT + i}`,
        `http: 127.0.0.1:${base + HTTP + i}`,
        `log_file: "${join(dir, `n${i}.log`)}"`,
        `jetstream {\n  store_dir: "${join(dir, `n${i}`)}"\n  ${o.jetstream ?? ""}\n}`,
        `cluster {\n  name: ${name}\n  listen: 127.0.0.1:${base + ROUTE + i}\n  routes: [\n    ${routes.join("\n    ")}\n  ]\n}`,
        o.extra ?? "",
      ].join("\n"),
    );
    return conf;
  });

  const children: (ChildProcess | null)[] = [null, null, null];
  // A test that dies leaves no servers behind (the single-server helper's leftovers were a nuisance).
  const onExit = () => children.forEach((c) => c?.kill("SIGKILL"));
  process.once("exit", onExit);

  const start = async (i: number) => {
    if (children[i] && children[i]!.exitCode === null && children[i]!.signalCode === null) return;
    const child = spawn(BIN, ["-c", confs[i]!], { stdio: "ignore" });
    children[i] = child;
    const failed = new Promise<never>((_, rej) => child.once("exit", (code) => rej(new Error(`nats-server ${names[i]} exited (${code}); see ${join(dir, `n${i}.log`)}`))));
    failed.catch(() => {});
    await Promise.race([waitPort(base + CLIENT + i, true), failed]);
  };
  const kill = async (i: number) => {
    const child = children[i];
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
    await waitPort(base + CLIENT + i, false);
  };
  const metaLeader = async (i?: number): Promise<string | null> => {
    for (const j of i === undefined ? [0, 1, 2] : [i]) {
      if (!children[j] || children[j]!.exitCode !== null) continue;
      const r = await monitor(base + HTTP + j, "/jsz");
      const leader = r?.body?.meta_cluster?.leader;
      if (leader) return leader as string;
    }
    return null;
  };

  const cluster: TestNatsCluster = {
    servers: [0, 1, 2].map((i) => `nats://127.0.0.1:${base + CLIENT + i}`),
    get url() {
      return cluster.servers.join(",");
    },
    name,
    names,
    monitorUrls: [0, 1, 2].map((i) => `http://127.0.0.1:${base + HTTP + i}`),
    running: (i) => !!children[i] && children[i]!.exitCode === null && children[i]!.signalCode === null,
    kill,
    start,
    metaLeader,
    async waitMetaLeader(ms = 30_000) {
      const end = Date.now() + ms;
      for (;;) {
        const leader = await metaLeader();
        if (leader) return leader;
        if (Date.now() > end) throw new Error(`no JetStream meta leader in the cluster ${name} after ${ms} ms\n${logTails(dir)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async waitHealthy(i, ms = 60_000) {
      const end = Date.now() + ms;
      for (;;) {
        const r = await monitor(base + HTTP + i, "/healthz");
        if (r?.status === 200 && r.body?.status === "ok") return;
        if (Date.now() > end) throw new Error(`nats-server ${names[i]} not healthy after ${ms} ms: ${JSON.stringify(r?.body)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async stop() {
      await Promise.all([0, 1, 2].map(kill));
      process.removeListener("exit", onExit);
      // VT_KEEP_CLUSTER=1 keeps the servers' logs and stores for a look after a failure.
      if (process.env.VT_KEEP_CLUSTER) process.stderr.write(`natsCluster: ${dir} kept (VT_KEEP_CLUSTER)\n`);
      else rmSync(dir, { recursive: true, force: true });
      releasePortBlock(base);
    },
    [Symbol.asyncDispose]() {
      return cluster.stop();
    },
  };
  try {
    await Promise.all([0, 1, 2].map(start));
    await cluster.waitMetaLeader();
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}
