import { execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import pg from "pg";

/**
 * A local pg_auto_failover formation: a monitor and two data nodes (a primary and a synchronous
 * standby) on loopback ports, each a `pg_autoctl run` of its own with its data under one folder.
 * For the demo, the failover test and the benchmark; production runs the same three roles on
 * three machines (docs/backup-and-restore.md). pg_autoctl refuses root, so every node runs as
 * the `postgres` system user; the folder is given to that user.
 */

export const PG_BIN = "/usr/lib/postgresql/15/bin";

export interface Formation {
  dir: string;
  /** The monitor's port; the data nodes listen on the next ports (node1 = port + 1, …). */
  port: number;
  nodes: number;
  /**
   * TimescaleDB preloaded on the data nodes (`--timescaledb`): the platform then takes the
   * TimescaleDB storage path there. Its files must be on every node's machine
   * (`../shared/timescaledb/install --files`, which `up` runs here when they are missing).
   */
  timescaledb?: boolean;
}

export const nodeName = (i: number) => `node${i}`;
export const nodePort = (f: Formation, i: number) => f.port + i;
/** DATABASE_URL for the platform: every data node, the primary found among them. */
export const formationUrl = (f: Formation, db: string) =>
  `postgres://postgres@${Array.from({ length: f.nodes }, (_, i) => `127.0.0.1:${nodePort(f, i + 1)}`).join(",")}/${db}`;
export const nodeUrl = (f: Formation, i: number, db = "postgres") => `postgres://postgres@127.0.0.1:${nodePort(f, i)}/${db}`;
const monitorUri = (f: Formation) => `postgres://autoctl_node@127.0.0.1:${f.port}/pg_auto_failover?sslmode=disable`;

export function pgAutoctlInstalled(): boolean {
  return existsSync("/usr/bin/pg_autoctl") && existsSync("/usr/lib/postgresql/15/lib/pgautofailover.so");
}

export function postgresUser(): { uid: number; gid: number } {
  return { uid: Number(execFileSync("id", ["-u", "postgres"]).toString()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString()) };
}

/** pg_autoctl's own files (config, state, pid) live in the formation's folder, not the user's home. */
export function env(f: Formation): NodeJS.ProcessEnv {
  return {
    PATH: `${PG_BIN}:/usr/bin:/bin`,
    HOME: f.dir,
    XDG_CONFIG_HOME: join(f.dir, "config"),
    XDG_DATA_HOME: join(f.dir, "share"),
    XDG_RUNTIME_DIR: join(f.dir, "run"),
    PG_CONFIG: "/usr/bin/pg_config",
  };
}

function autoctl(f: Formation, args: string[]): string {
  const { uid, gid } = postgresUser();
  return execFileSync("pg_autoctl", args, { uid, gid, env: env(f), cwd: f.dir, stdio: ["ignore", "pipe", "pipe"] }).toString();
}

/** Starts `pg_autoctl <args>` in a process group of its own, detached; its pid goes to `<name>.pid`. */
function runDetached(f: Formation, name: string, args: string[]): number {
  const { uid, gid } = postgresUser();
  const log = openSync(join(f.dir, `${name}.log`), "a");
  const child = spawn("pg_autoctl", args, { uid, gid, env: env(f), cwd: f.dir, detached: true, stdio: ["ignore", log, log] });
  child.unref();
  writeFileSync(join(f.dir, `${name}.pid`), String(child.pid));
  return child.pid!;
}

async function until<T>(what: string, f: () => Promise<T | null | undefined | false>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`pg-ha: ${what} did not happen in ${ms / 1000} s${last ? `: ${(last as Error).message}` : ""}`, { cause: last });
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface NodeState {
  name: string;
  port: number;
  current: string;
  assigned: string;
}

/** The monitor's view of the data nodes. */
export async function formationState(f: Formation): Promise<NodeState[]> {
  const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${f.port}/pg_auto_failover`, connectionTimeoutMillis: 2000 });
  c.on("error", () => {});
  await c.connect();
  try {
    const r = await c.query<NodeState>(
      `SELECT nodename AS name, nodeport AS port, reportedstate::text AS current, goalstate::text AS assigned FROM pgautofailover.node ORDER BY nodeid`,
    );
    return r.rows;
  } finally {
    await c.end().catch(() => {});
  }
}

/** The node the monitor has as primary, once the others are its synchronous standbys. */
export async function waitHealthy(f: Formation, ms = 120_000): Promise<NodeState> {
  return until("a primary with its standbys in sync", async () => {
    const s = await formationState(f);
    const primary = s.find((n) => n.current === "primary" && n.assigned === "primary");
    const standbys = s.filter((n) => n.current === "secondary" && n.assigned === "secondary");
    return s.length === f.nodes && primary && standbys.length === f.nodes - 1 ? primary : null;
  }, ms);
}

async function writable(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  c.on("error", () => {});
  try {
    await c.connect();
    return (await c.query("SHOW transaction_read_only")).rows[0]?.transaction_read_only === "off";
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

async function accepts(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  c.on("error", () => {});
  try {
    await c.connect();
    await c.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Seconds after which a primary that reaches neither the monitor nor a standby demotes itself. */
const NETWORK_PARTITION_S = 4;

/**
 * pg_auto_failover's defaults take about 50 s from a primary's death to a promotion (a node is
 * unhealthy after 20 s, and the monitor waits 30 s for the old primary to demote itself). These
 * bring it to about 10-15 s: a node is unhealthy after 4 s of failed checks every second, and the
 * monitor waits 8 s, twice the 4 s after which a partitioned primary has demoted itself, so two
 * primaries never take writes at once.
 */
async function tuneMonitor(f: Formation): Promise<void> {
  const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${f.port}/pg_auto_failover` });
  await c.connect();
  try {
    for (const [k, v] of [
      ["health_check_period", 1000],
      ["health_check_timeout", 1000],
      ["health_check_max_retries", 1],
      ["health_check_retry_delay", 500],
      ["node_considered_unhealthy_timeout", 4000],
      ["primary_demote_timeout", NETWORK_PARTITION_S * 2000],
    ] as const)
      await c.query(`ALTER SYSTEM SET pgautofailover.${k} = ${v}`);
    await c.query("SELECT pg_reload_conf()");
  } finally {
    await c.end();
  }
}

/** pgBackRest's configuration of the formation (cli/pg-backup.ts writes it). */
export const backupConfigPath = (f: Formation) => join(f.dir, "pgbackrest.conf");
export const STANZA = "voltvend";

/**
 * Appended to each node's postgresql.conf (after pg_auto_failover's includes, so these win):
 * loopback only; memory for a shared test machine, not the machine-sized defaults
 * pg_auto_failover computes; and every WAL segment into pgBackRest's repository. PostgreSQL runs
 * archive_command in the data directory, so one line serves every node.
 */
function localSettings(f: Formation, dataNode: boolean): string {
  return [
    "",
    "# voltvend (cli/pg-ha.ts)",
    // pg_auto_failover preloads pg_stat_statements on data nodes; TimescaleDB joins it there (its
    // background jobs, the policies, run on whichever node is primary).
    ...(f.timescaledb && dataNode
      ? ["shared_preload_libraries = 'pg_stat_statements,timescaledb'", "timescaledb.telemetry_level = off", "timescaledb.max_background_workers = 8", "max_worker_processes = 16"]
      : []),
    "listen_addresses = '127.0.0.1'",
    "shared_buffers = '128MB'",
    "effective_cache_size = '1GB'",
    "maintenance_work_mem = '64MB'",
    "work_mem = '8MB'",
    "wal_keep_size = '512MB'",
    "archive_mode = on",
    `archive_command = 'pgbackrest --config=${backupConfigPath(f)} --stanza=${STANZA} --pg1-path="$(pwd)" archive-push %p'`,
    // A quiet database still closes a WAL segment this often: the most an archive can lag.
    "archive_timeout = 60",
    "",
  ].join("\n");
}

function configure(f: Formation, pgdata: string, dataNode: boolean): void {
  const conf = join(pgdata, "postgresql.conf");
  const text = readFileSync(conf, "utf8");
  if (!text.includes("# voltvend (cli/pg-ha.ts)")) writeFileSync(conf, text + localSettings(f, dataNode));
  // pg_autoctl create leaves PostgreSQL running; `run` starts it again with these settings.
  if (existsSync(join(pgdata, "postmaster.pid"))) {
    const { uid, gid } = postgresUser();
    try {
      execFileSync(join(PG_BIN, "pg_ctl"), ["-D", pgdata, "-m", "fast", "-w", "stop"], { uid, gid, env: env(f), cwd: f.dir, stdio: "ignore" });
    } catch {
      /* not running after all */
    }
  }
}

/**
 * Creates (first time) and runs the monitor and the data nodes; resolves when the primary has
 * its standby in sync. Idempotent: a running formation is left as it is.
 */
/** TimescaleDB's files for this PostgreSQL, from ../shared/timescaledb when they are not installed. */
function ensureTimescaleFiles(): void {
  if (existsSync(join("/usr/lib/postgresql/15/lib", "timescaledb.so"))) return;
  const installer = resolve(import.meta.dirname, "../../shared/timescaledb/install");
  if (!existsSync(installer)) throw new Error(`--timescaledb: TimescaleDB is not installed and ${installer} is missing`);
  execFileSync(installer, ["--files"], { stdio: "inherit" });
}

export async function up(f: Formation): Promise<NodeState> {
  if (f.timescaledb) ensureTimescaleFiles();
  mkdirSync(f.dir, { recursive: true });
  const { uid, gid } = postgresUser();
  chownSync(f.dir, uid, gid);
  writeBackupConfig(f);
  const common = ["--auth", "trust", "--no-ssl", "--pgctl", join(PG_BIN, "pg_ctl"), "--hostname", "127.0.0.1"];
  const monitorData = join(f.dir, "monitor");
  if (!alive(f, "monitor")) {
    if (!existsSync(join(monitorData, "PG_VERSION"))) {
      autoctl(f, ["create", "monitor", "--pgdata", monitorData, "--pgport", String(f.port), ...common]);
      autoctl(f, ["config", "set", "--pgdata", monitorData, "postgresql.listen_addresses", "127.0.0.1"]);
      configure(f, monitorData, false);
    }
    runDetached(f, "monitor", ["run", "--pgdata", monitorData]);
  }
  await until("the monitor", () => accepts(`postgres://postgres@127.0.0.1:${f.port}/pg_auto_failover`));
  await tuneMonitor(f);
  for (let i = 1; i <= f.nodes; i++) {
    const data = join(f.dir, nodeName(i));
    if (!alive(f, nodeName(i))) {
      if (!existsSync(join(data, "PG_VERSION"))) {
        autoctl(f, [
          "create", "postgres", "--pgdata", data, "--pgport", String(nodePort(f, i)), "--name", nodeName(i), "--monitor", monitorUri(f),
          "--dbname", "postgres", "--listen", "127.0.0.1", "--replication-quorum", "true", ...common,
        ]);
        // See tuneMonitor: a primary cut off from the monitor and its standby demotes itself after this.
        autoctl(f, ["config", "set", "--pgdata", data, "timeout.network_partition_timeout", String(NETWORK_PARTITION_S)]);
        configure(f, data, true);
      }
      runDetached(f, nodeName(i), ["run", "--pgdata", data]);
    }
    // One at a time: the first registered becomes the primary, the next ones clone it.
    await until(`${nodeName(i)} registered`, async () => (await formationState(f)).some((n) => n.name === nodeName(i) && ["primary", "secondary", "single", "wait_primary"].includes(n.current)), 180_000);
  }
  // The monitor's states outlive a `down`: after a start, wait for the primary itself to take writes too.
  const primary = await until("the primary taking writes", async () => {
    const p = await waitHealthy(f, 180_000);
    return (await writable(nodeUrl(f, p.port - f.port))) ? p : null;
  }, 180_000);
  // The repository's stanza (idempotent): from then on WAL segments are archived.
  await until("pgbackrest stanza-create", async () => {
    backrest(f, primary, ["stanza-create"]);
    return true;
  }, 60_000);
  return primary;
}

/** pgBackRest's configuration: the repository (a folder here; another disk or machine in production), retention. */
export function writeBackupConfig(f: Formation, repo = join(f.dir, "backup-repo")): void {
  const { uid, gid } = postgresUser();
  for (const d of [repo, join(f.dir, "backup-log"), join(f.dir, "backup-lock")]) {
    mkdirSync(d, { recursive: true });
    chownSync(d, uid, gid);
  }
  writeFileSync(
    backupConfigPath(f),
    [
      "[global]",
      `repo1-path=${repo}`,
      // Two full backups and every incremental and WAL segment since the older one.
      "repo1-retention-full=2",
      "start-fast=y",
      "compress-type=lz4",
      `log-path=${join(f.dir, "backup-log")}`,
      `lock-path=${join(f.dir, "backup-lock")}`,
      "log-level-console=warn",
      "log-level-file=info",
      "",
      `[${STANZA}]`,
      // Per command the primary's data directory and port are given (--pg1-path, --pg1-port).
      `pg1-path=${join(f.dir, nodeName(1))}`,
      `pg1-port=${nodePort(f, 1)}`,
      "",
    ].join("\n"),
  );
  chownSync(backupConfigPath(f), uid, gid);
}

/** Runs pgbackrest as postgres against `node` (the primary, for stanza-create and backups). */
export function backrest(f: Formation, node: { name: string; port: number } | null, args: string[]): string {
  const { uid, gid } = postgresUser();
  const target = node ? [`--pg1-path=${join(f.dir, node.name)}`, `--pg1-port=${node.port}`] : [];
  return execFileSync("pgbackrest", [`--config=${backupConfigPath(f)}`, `--stanza=${STANZA}`, ...target, ...args], {
    uid,
    gid,
    env: env(f),
    cwd: f.dir,
    stdio: ["ignore", "pipe", "pipe"],
  }).toString();
}

function pidOf(f: Formation, name: string): number | null {
  const p = join(f.dir, `${name}.pid`);
  return existsSync(p) ? Number(readFileSync(p, "utf8")) || null : null;
}

function alive(f: Formation, name: string): boolean {
  const pid = pidOf(f, name);
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The postmaster of a node's data directory, from its postmaster.pid. */
function postmasterPid(pgdata: string): number | null {
  const p = join(pgdata, "postmaster.pid");
  return existsSync(p) ? Number(readFileSync(p, "utf8").split("\n")[0]) || null : null;
}

/**
 * kill -9 of a node: its pg_autoctl process group (keeper and its services) and its postgres.
 * What a machine's sudden death looks like to the others.
 */
export function killNode(f: Formation, name: string): void {
  const pid = pidOf(f, name);
  const pm = postmasterPid(join(f.dir, name));
  for (const target of [pid ? -pid : null, pm, pm ? -pm : null]) {
    if (!target) continue;
    try {
      process.kill(target, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

/** Starts a node again after a kill: it rejoins as a standby (pg_rewind when needed). */
export function restartNode(f: Formation, name: string): void {
  if (!alive(f, name)) runDetached(f, name, ["run", "--pgdata", join(f.dir, name)]);
}

/** Stops every node (pg_autoctl stop, then a kill of what is left); `destroy` also removes the folder. */
export async function down(f: Formation, o: { destroy?: boolean } = {}): Promise<void> {
  // The monitor first: with it gone, stopping the primary starts no failover.
  const names = ["monitor", ...Array.from({ length: f.nodes }, (_, i) => nodeName(i + 1))];
  for (const name of names) {
    if (!alive(f, name)) continue;
    try {
      autoctl(f, ["stop", "--pgdata", join(f.dir, name), "--immediate"]);
    } catch {
      /* killed below */
    }
  }
  const end = Date.now() + 15_000;
  while (names.some((n) => alive(f, n)) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
  for (const name of names) killNode(f, name);
  if (o.destroy) rmSync(f.dir, { recursive: true, force: true });
}

export function formationFrom(argv: string[], environment: NodeJS.ProcessEnv): Formation {
  const opt = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    dir: resolve(opt("dir") ?? environment.PGHA_DIR ?? ".data/pgha"),
    port: Number(opt("port") ?? environment.PGHA_PORT ?? 6000),
    nodes: Number(opt("nodes") ?? 2),
    timescaledb: argv.includes("--timescaledb") || environment.PGHA_TIMESCALEDB === "1",
  };
}

/** `npm run pg:ha -- up|down|destroy|status|kill <node>|restart <node> [--dir D] [--port P] [--timescaledb]` */
export async function main(argv: string[]): Promise<void> {
  const [cmd, arg] = argv;
  const f = formationFrom(argv, process.env);
  if (!pgAutoctlInstalled()) throw new Error("pg_autoctl is not installed: apt-get install postgresql-15-auto-failover pg-auto-failover-cli");
  switch (cmd) {
    case "up": {
      const p = await up(f);
      console.log(`formation up in ${f.dir}: monitor :${f.port}, primary ${p.name} :${p.port}`);
      console.log(`DATABASE_URL=${formationUrl(f, "voltvend")}`);
      break;
    }
    case "down":
    case "destroy":
      await down(f, { destroy: cmd === "destroy" });
      console.log(cmd === "destroy" ? `formation stopped and ${f.dir} removed` : "formation stopped (data kept; `up` starts it again)");
      break;
    case "status":
      console.table(await formationState(f));
      break;
    case "kill":
      killNode(f, arg ?? "node1");
      console.log(`killed ${arg ?? "node1"} (keeper and postgres, SIGKILL)`);
      break;
    case "restart":
      restartNode(f, arg ?? "node1");
      break;
    case "backup": {
      const { backup } = await import("./pg-backup.ts");
      const type = (arg ?? "incr") as "full" | "diff" | "incr";
      if (!["full", "diff", "incr"].includes(type)) throw new Error("backup full|diff|incr");
      console.log(`backup ${await backup(f, type)} done`);
      break;
    }
    case "info":
      console.log(backrest(f, null, ["info"]));
      break;
    case "restore": {
      const { restore } = await import("./pg-backup.ts");
      const i = argv.indexOf("--target");
      const to = argv[argv.indexOf("--to") + 1];
      if (!argv.includes("--to") || !to) throw new Error("restore --to DIR [--target 'TIMESTAMP'] [--restore-port P]");
      const port = Number(argv[argv.indexOf("--restore-port") + 1] ?? f.port + 9);
      const r = await restore(f, { to: resolve(to), port: argv.includes("--restore-port") ? port : f.port + 9, ...(i >= 0 ? { target: argv[i + 1]! } : {}) });
      console.log(`restored into ${r.dir}, running on port ${r.port} (stop: pg_ctl -D ${r.dir} stop, as postgres)`);
      break;
    }
    default:
      throw new Error(
        "usage: npm run pg:ha -- up|down|destroy|status|kill <node>|restart <node>|backup full|diff|incr|info|restore --to DIR [--target TIME] [--restore-port P]  [--dir D] [--port P] [--timescaledb]",
      );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e) => {
      console.error((e as Error).message);
      process.exit(1);
    },
  );
}
