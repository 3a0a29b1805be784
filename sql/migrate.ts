import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const here = dirname(fileURLToPath(import.meta.url));

export class MigrationError extends Error {
  override name = "MigrationError";
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** The numbered files of sql/, in order. Names are `NNN_words.sql`; numbers must be unique. */
export async function loadMigrations(dir = here): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort();
  const out: Migration[] = [];
  for (const f of files) {
    const sql = await readFile(join(dir, f), "utf8");
    const version = Number(f.slice(0, 3));
    if (out.some((m) => m.version === version)) throw new MigrationError(`two migrations numbered ${version}`);
    out.push({ version, name: f, sql, checksum: createHash("sha256").update(sql).digest("hex") });
  }
  return out;
}

/** Creates the database named in the URL when it does not exist yet (connecting to `postgres`). */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!name) throw new MigrationError(`DATABASE_URL names no database: ${databaseUrl}`);
  url.pathname = "/postgres";
  const client = new pg.Client({ connectionString: url.toString() });
  // A connection lost mid-way fails the query in hand; unheard, its 'error' event would end the process.
  client.on("error", () => {});
  await client.connect();
  try {
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1::text", [name]);
    if (rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    } catch (e) {
      // Another instance created it between our check and our create.
      if ((e as { code?: string }).code !== "42P04") throw e;
      return false;
    }
    return true;
  } finally {
    await client.end();
  }
}

/**
 * Applies the migrations not yet applied, each in its own transaction, under an advisory lock so
 * that several instances starting together migrate once. An applied file that changed since is
 * an error: migrations are append-only.
 */
export type StorageEngine = "auto" | "timescaledb" | "plain";

export async function migrate(databaseUrl: string, log: (msg: string) => void = () => {}, storage: StorageEngine = "auto"): Promise<number[]> {
  await ensureDatabase(databaseUrl);
  const migrations = await loadMigrations();
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on("error", () => {}); // as in ensureDatabase
  await client.connect();
  const applied: number[] = [];
  try {
    await client.query("SELECT pg_advisory_lock(hashtext('voltvend_migrate'))");
    // Read by 004_readings.sql to choose the storage path.
    await client.query("SELECT set_config('voltvend.storage', $1::text, false)", [storage]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number; checksum: string; name: string }>(
      "SELECT version, checksum, name FROM schema_migrations",
    );
    const done = new Map(rows.map((r) => [r.version, r]));
    // Progress, one line per migration with its count and time: one can take long on a big database.
    const pending = migrations.filter((m) => !done.has(m.version)).length;
    if (pending) log(`applying ${pending} migration${pending === 1 ? "" : "s"}`);
    for (const m of migrations) {
      const prior = done.get(m.version);
      if (prior) {
        if (prior.checksum !== m.checksum)
          throw new MigrationError(`${m.name} changed after it was applied (migrations are append-only; add a new one)`);
        continue;
      }
      const began = Date.now();
      // A migration with a backfill can take minutes on a big database: say it is still going.
      const still = setInterval(
        () => log(`migration ${applied.length + 1} of ${pending}: ${m.name} still running after ${Math.round((Date.now() - began) / 1000)} s`),
        10_000,
      );
      await client.query("BEGIN");
      try {
        await client.query(m.sql);
        await client.query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1::int, $2::text, $3::text)", [
          m.version,
          m.name,
          m.checksum,
        ]);
        await client.query("COMMIT");
      } catch (e) {
        await client.query("ROLLBACK");
        throw new MigrationError(`${m.name} failed: ${(e as Error).message}`, { cause: e });
      } finally {
        clearInterval(still);
      }
      applied.push(m.version);
      log(`migration ${applied.length} of ${pending}: ${m.name} applied in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    }
  } finally {
    await client.query("SELECT pg_advisory_unlock(hashtext('voltvend_migrate'))").catch(() => {});
    await client.end();
  }
  return applied;
}
