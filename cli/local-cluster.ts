import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import type { Logger } from "pino";
import { natsServers } from "../contracts/index.ts";

/**
 * `npm start -- --cluster`: three nats-servers with JetStream clustered on this machine. The client
 * ports are NATS_URL's (4231, 4232, 4233 by default); each server's route port is its client port +
 * 2000 and its monitoring port its client port + 4000 (8231: `/jsz`, `/healthz`).
 */
export const LOCAL_CLUSTER_URL = "nats://127.0.0.1:4231,nats://127.0.0.1:4232,nats://127.0.0.1:4233";
export const ROUTE_OFFSET = 2000;
export const MONITOR_OFFSET = 4000;

export interface ClusterNode {
  /** `server_name`: unique in the cluster, kept across restarts (JetStream knows its peers by it). */
  serverName: string;
  /** Client listen address, `host:port`. */
  listen: string;
  /** Route listen address, `host:port`. */
  routeListen: string;
  /** Every node's route URL (its own among them is ignored by the server). */
  routes: string[];
  storeDir: string;
  /** Monitoring listen address (`/healthz`, `/jsz`), or none. */
  http?: string;
  /** nats-server 2.10+: fsync every write before the acknowledgement (2.9 rejects the key). */
  syncAlways?: boolean;
  /** Extra text for the top level (an authorization include, MQTT). */
  extra?: string;
}

/** The configuration of one server of a three-node JetStream cluster named `clusterName`. */
export function clusterNodeConfig(clusterName: string, n: ClusterNode): string {
  return [
    `server_name: ${n.serverName}`,
    `listen: ${n.listen}`,
    n.http ? `http: ${n.http}` : "",
    "jetstream {",
    `  store_dir: "${n.storeDir}"`,
    n.syncAlways ? "  sync_interval: always" : "",
    "}",
    "cluster {",
    `  name: ${clusterName}`,
    `  listen: ${n.routeListen}`,
    `  routes: [${n.routes.join(", ")}]`,
    "}",
    n.extra ?? "",
  ]
    .filter(Boolean)
    .join("\n")
    .concat("\n");
}

function reachable(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.setTimeout(1000, () => (s.destroy(), res(false)));
    s.once("connect", () => (s.destroy(), res(true)));
    s.once("error", () => res(false));
  });
}

/** The meta leader's name as the server on `monitorPort` sees it, or null. */
async function metaLeader(monitorPort: number): Promise<string | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${monitorPort}/jsz`, { signal: AbortSignal.timeout(2000) });
    return ((await r.json()) as { meta_cluster?: { leader?: string } }).meta_cluster?.leader ?? null;
  } catch {
    return null;
  }
}

const LOOPBACK = new Set(["127.0.0.1", "localhost"]);

/**
 * Makes sure the three loopback servers of `url` run as one JetStream cluster: those that do not
 * answer are started here, each with its configuration and store under `<dataDir>/n<i>`, in their
 * own process group (a Ctrl-C reaches the platform, which stops them after draining). Resolves once
 * the cluster has a meta leader, so that replicated streams can be made.
 */
export async function ensureLocalCluster(url: string, bin: string, dataDir: string, log: Logger): Promise<{ started: number; stop(): Promise<void> }> {
  const servers = natsServers(url).map((s) => new URL((/^[a-z]+:\/\//i.test(s) ? s : `nats://${s}`).replace(/^nats:/, "http:")));
  if (servers.length !== 3 || servers.some((u) => !LOOPBACK.has(u.hostname) || !u.port))
    throw new Error(`--cluster needs NATS_URL to list three loopback servers with their ports (e.g. ${LOCAL_CLUSTER_URL}); got ${url}`);
  const ports = servers.map((u) => Number(u.port));
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p + ROUTE_OFFSET}`);
  const children: ChildProcess[] = [];
  for (const [i, port] of ports.entries()) {
    if (await reachable(port)) continue;
    const dir = join(dataDir, `n${i + 1}`);
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, "nats-server.conf");
    writeFileSync(
      conf,
      clusterNodeConfig("voltvend-local", {
        serverName: `voltvend-local-${i + 1}`,
        listen: `127.0.0.1:${port}`,
        routeListen: `127.0.0.1:${port + ROUTE_OFFSET}`,
        routes,
        storeDir: join(dir, "js"),
        http: `127.0.0.1:${port + MONITOR_OFFSET}`,
        extra: `log_file: "${join(dir, "nats-server.log")}"`,
      }),
    );
    children.push(spawn(bin, ["-c", conf], { stdio: "ignore", detached: true }));
    log.info({ port, dir }, "started a nats-server of the local cluster");
  }
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((r) => {
            if (c.exitCode !== null || c.signalCode !== null) return r();
            c.once("exit", () => r());
            c.kill("SIGTERM");
          }),
      ),
    );
  };
  const end = Date.now() + 60_000;
  for (;;) {
    const ups = await Promise.all(ports.map(reachable));
    const leader = ups.every(Boolean) ? await metaLeader(ports[0]! + MONITOR_OFFSET) : null;
    if (leader) {
      log.info({ leader, servers: url }, "local NATS cluster ready");
      return { started: children.length, stop };
    }
    // Three servers already running that were not started here may have no monitoring port.
    if (children.length === 0 && ups.every(Boolean) && Date.now() > end - 55_000) {
      log.warn({ servers: url }, "the three NATS servers answer but not on their monitoring ports: assuming a cluster");
      return { started: 0, stop };
    }
    if (Date.now() > end) {
      await stop();
      throw new Error(`the local NATS cluster (${url}) has no JetStream meta leader after 60 s: see ${join(dataDir, "n1", "nats-server.log")}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
