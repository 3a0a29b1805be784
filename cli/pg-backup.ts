import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { backrest, env, formationState, PG_BIN, postgresUser, type Formation } from "./pg-ha.ts";

/**
 * Backups of the formation with pgBackRest (docs/backup-and-restore.md): WAL archived
 * continuously by every node (archive_command, cli/pg-ha.ts), full and incremental backups taken
 * from the current primary, and restores to a point in time into a new cluster.
 */

export type BackupType = "full" | "diff" | "incr";

/** The node the monitor has as primary now (a lone primary after a failover is `wait_primary`). */
async function currentPrimary(f: Formation) {
  const s = await formationState(f);
  const p = s.find((n) => n.current === "primary" || n.current === "wait_primary");
  if (!p) throw new Error("no primary in the formation");
  return p;
}

/** A backup of the given type from the current primary; resolves with its label. */
export async function backup(f: Formation, type: BackupType): Promise<string> {
  const p = await currentPrimary(f);
  backrest(f, p, ["backup", `--type=${type}`]);
  const info = JSON.parse(backrest(f, null, ["info", "--output=json"])) as { backup: { label: string }[] }[];
  return info[0]!.backup.at(-1)!.label;
}

/** Closes the current WAL segment on the primary and waits until the archive has it (what `check` does). */
export async function archiveNow(f: Formation): Promise<void> {
  const p = await currentPrimary(f);
  backrest(f, p, ["check"]);
}

export interface Restored {
  dir: string;
  port: number;
  url(db: string): string;
  stop(): void;
}

/**
 * Restores the latest backup and the archived WAL up to `target` (a timestamp PostgreSQL reads,
 * e.g. `2026-11-30 06:10:00.123+00`; the end of the archive when absent) into the new data
 * directory `to`, starts it on `port` as a cluster of its own (promoted, not archiving, not
 * waiting for a standby), and resolves once it takes connections.
 */
export async function restore(f: Formation, o: { to: string; port: number; target?: string }): Promise<Restored> {
  const { uid, gid } = postgresUser();
  if (existsSync(join(o.to, "PG_VERSION"))) throw new Error(`${o.to} already holds a cluster`);
  mkdirSync(o.to, { recursive: true });
  chownSync(o.to, uid, gid);
  chmodSync(o.to, 0o700);
  const target = o.target ? ["--type=time", `--target=${o.target}`, "--target-action=promote"] : ["--type=default"];
  backrest(f, null, ["restore", `--pg1-path=${o.to}`, ...target]);
  const opts = [
    `-c port=${o.port}`,
    "-c listen_addresses=127.0.0.1",
    // The copy must not push WAL into the formation's archive nor wait for the formation's standby.
    "-c archive_mode=off",
    "-c synchronous_standby_names=''",
    "-c shared_buffers=128MB",
  ].join(" ");
  const pgctl = (args: string[]) => execFileSync(join(PG_BIN, "pg_ctl"), ["-D", o.to, ...args], { uid, gid, env: env(f), cwd: f.dir, stdio: "ignore" });
  pgctl(["-o", opts, "-l", join(o.to, "restore.log"), "-w", "-t", "300", "start"]);
  const url = (db: string) => `postgres://postgres@127.0.0.1:${o.port}/${db}`;
  const end = Date.now() + 300_000;
  for (;;) {
    const c = new pg.Client({ connectionString: url("postgres") });
    c.on("error", () => {});
    try {
      await c.connect();
      const r = await c.query<{ r: boolean }>("SELECT pg_is_in_recovery() AS r");
      if (!r.rows[0]!.r) break;
    } catch {
      /* still starting */
    } finally {
      await c.end().catch(() => {});
    }
    if (Date.now() > end) throw new Error(`the restored cluster in ${o.to} did not finish recovery (see restore.log)`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    dir: o.to,
    port: o.port,
    url,
    stop: () => {
      try {
        pgctl(["-m", "fast", "-w", "stop"]);
      } catch {
        /* already stopped */
      }
    },
  };
}
