import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, type WriteStream } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "../../cli/index.ts";
export { freePort };

/**
 * The platform as an operator runs it: each part a process of its own (`cli/main.ts --parts ...`),
 * on a nats-server of the chaos run's own (so killing it hurts no one) and a database of its own
 * on the shared PostgreSQL. Every process is watched: an exit the run did not cause is recorded.
 */

const NATS_BIN = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"].find(existsSync) ?? "nats-server";

export const PARTS = { control: "control", processors: "cutoff,faults", writer: "writer" } as const;
export type PartName = keyof typeof PARTS;


async function portOpen(port: number): Promise<boolean> {
  return new Promise((r) => {
    const c = createConnection({ host: "127.0.0.1", port });
    c.once("connect", () => (c.destroy(), r(true)));
    c.once("error", () => r(false));
  });
}

export async function waitUntil(what: string, fn: () => Promise<boolean> | boolean, ms: number, every = 100): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A process exit the run did not ask for. */
export interface UnexpectedExit {
  process: string;
  at: number;
  code: number | null;
  signal: string | null;
  /** The end of its log: why it died. */
  logTail: string;
}

interface Watched {
  name: string;
  child: ChildProcess;
  log: string;
  killing: boolean;
}

export interface ClusterOptions {
  /** PostgreSQL as its superuser, e.g. postgres://postgres@127.0.0.1:5432/postgres. */
  pgAdminUrl: string;
  /** The database of this run (created here, dropped by `destroy`). */
  database: string;
  prefix: string;
  jwtSecret: string;
  /** Extra environment for every part. */
  env?: Record<string, string>;
}

export class ChaosCluster {
  readonly dir = mkdtempSync(join(tmpdir(), "vv-chaos-"));
  readonly unexpected: UnexpectedExit[] = [];
  natsPort = 0;
  httpPort = 0;
  #nats: Watched | null = null;
  #parts = new Map<PartName, Watched>();
  #logs: WriteStream[] = [];

  constructor(readonly o: ClusterOptions) {}

  get natsUrl(): string {
    return `nats://127.0.0.1:${this.natsPort}`;
  }
  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }
  get databaseUrl(): string {
    const u = new URL(this.o.pgAdminUrl);
    u.pathname = `/${this.o.database}`;
    return u.toString();
  }

  async start(): Promise<void> {
    this.natsPort = await freePort();
    this.httpPort = await freePort();
    writeFileSync(
      join(this.dir, "nats.conf"),
      [`listen: 127.0.0.1:${this.natsPort}`, `server_name: vv_chaos_${this.natsPort}`, `jetstream { store_dir: "${join(this.dir, "js")}" }`].join("\n"),
    );
    await this.startNats();
    const admin = new pg.Client({ connectionString: this.o.pgAdminUrl });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${this.o.database}`);
    } finally {
      await admin.end();
    }
    // Control first: it migrates the database and makes the NATS topology the others use.
    await this.startPart("control");
    await this.startPart("processors");
    await this.startPart("writer");
  }

  #watch(name: string, child: ChildProcess, log: string): Watched {
    const w: Watched = { name, child, log, killing: false };
    child.once("exit", (code, signal) => {
      if (w.killing) return;
      this.unexpected.push({ process: name, at: Date.now(), code, signal, logTail: tail(log) });
    });
    return w;
  }

  #logStream(name: string): { path: string; stream: WriteStream } {
    mkdirSync(join(this.dir, "logs"), { recursive: true });
    const path = join(this.dir, "logs", `${name}.log`);
    const stream = createWriteStream(path, { flags: "a" });
    this.#logs.push(stream);
    return { path, stream };
  }

  async startNats(): Promise<void> {
    const { path, stream } = this.#logStream("nats");
    const child = spawn(NATS_BIN, ["-c", join(this.dir, "nats.conf")], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.pipe(stream, { end: false });
    child.stderr!.pipe(stream, { end: false });
    this.#nats = this.#watch("nats-server", child, path);
    await waitUntil("nats-server listening", () => portOpen(this.natsPort), 15_000);
  }

  /** kill -9 of the nats-server; returns when its port is closed. */
  async killNats(): Promise<void> {
    const w = this.#nats!;
    await killHard(w);
    await waitUntil("nats port closed", async () => !(await portOpen(this.natsPort)), 10_000);
  }

  async startPart(part: PartName): Promise<void> {
    const { path, stream } = this.#logStream(part);
    // node --import tsx (not the tsx launcher, which runs the program in a child): kill -9 must
    // reach the process that holds the connections.
    const child = spawn(process.execPath, ["--import", "tsx", "cli/main.ts", "--parts", PARTS[part]], {
      env: {
        ...process.env,
        NATS_URL: this.natsUrl,
        DATABASE_URL: this.databaseUrl,
        PORT: String(this.httpPort),
        HOST: "127.0.0.1",
        VEND_PREFIX: this.o.prefix,
        VEND_JWT_SECRET: this.o.jwtSecret,
        VEND_STORAGE: "plain",
        LOG_LEVEL: "warn",
        STREAM_MAX_BYTES: String(256 * 2 ** 20),
        // The fleet's duration targets are seconds long, so that many sessions end within a phase.
        MIN_TARGET_DURATION_S: "1",
        // Each process's own /metrics and health (docs/operations.md): any free port, so the parts
        // without the control service do not all ask for the default one.
        METRICS_PORT: "0",
        ...this.o.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.pipe(stream, { end: false });
    child.stderr!.pipe(stream, { end: false });
    this.#parts.set(part, this.#watch(part, child, path));
    await this.partReady(part, 90_000);
  }

  /** Ready: control answers /readyz; the others are running (whether they consume again is the run's recovery check). */
  async partReady(part: PartName, ms: number): Promise<void> {
    const w = this.#parts.get(part)!;
    if (part === "control") {
      await waitUntil(
        "control ready",
        async () => {
          if (w.child.exitCode !== null) throw new Error("control exited");
          return (await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) })).ok;
        },
        ms,
        200,
      );
    } else {
      // The part is ready when it holds its NATS connection; the durable consumer resumes by itself.
      await waitUntil("part alive", () => w.child.exitCode === null && w.child.pid !== undefined, ms);
    }
  }

  alive(part: PartName): boolean {
    const w = this.#parts.get(part);
    return !!w && w.child.exitCode === null && w.child.signalCode === null;
  }

  /** kill -9 of one part. */
  async killPart(part: PartName): Promise<void> {
    const w = this.#parts.get(part);
    if (w) await killHard(w);
  }

  /** Starts again any part (or the nats-server) that died without being killed: the run goes on. */
  async reviveDead(): Promise<string[]> {
    const revived: string[] = [];
    if (this.#nats && this.#nats.child.exitCode !== null && !this.#nats.killing) {
      await this.startNats();
      revived.push("nats-server");
    }
    for (const [part, w] of this.#parts) {
      if (!w.killing && (w.child.exitCode !== null || w.child.signalCode !== null)) {
        await this.startPart(part);
        revived.push(part);
      }
    }
    return revived;
  }

  logOf(name: string): string {
    return join(this.dir, "logs", `${name}.log`);
  }

  /** Stops every process (SIGTERM, then SIGKILL), drops the database, removes the store. */
  async destroy(o: { keepLogs?: boolean } = {}): Promise<void> {
    const all = [...this.#parts.values(), ...(this.#nats ? [this.#nats] : [])];
    await Promise.all(
      all.map(async (w) => {
        w.killing = true;
        if (w.child.exitCode !== null || w.child.signalCode !== null) return;
        const exited = new Promise((r) => w.child.once("exit", r));
        w.child.kill("SIGTERM");
        const t = setTimeout(() => w.child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }),
    );
    for (const s of this.#logs) s.end();
    const admin = new pg.Client({ connectionString: this.o.pgAdminUrl });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${this.o.database} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    rmSync(join(this.dir, "js"), { recursive: true, force: true });
    if (!o.keepLogs) rmSync(this.dir, { recursive: true, force: true });
  }
}

async function killHard(w: Watched): Promise<void> {
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.killing = true;
  const exited = new Promise((r) => w.child.once("exit", r));
  w.child.kill("SIGKILL");
  await exited;
}

function tail(path: string, bytes = 2000): string {
  try {
    const s = readFileSync(path, "utf8");
    return s.slice(-bytes);
  } catch {
    return "";
  }
}
