import pg from "pg";
import { PG_ADMIN_URL, TEMPLATE_DB, TIMESCALEDB_REQUIRED, TSDB_ADMIN_URL, adminUrl, dbUrl, testDbName, type Engine } from "./env.ts";

/** A connected client, ended on dispose (`await using c = await pgClient(url)`); its errors after a server's end are expected. */
export async function pgClient(url: string): Promise<pg.Client & AsyncDisposable> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => {});
  await c.connect();
  return Object.assign(c, { [Symbol.asyncDispose]: () => c.end() });
}

/** A pool, ended on dispose (`await using pool = pgPool(url)`). */
export function pgPool(url: string, max = 10): pg.Pool & AsyncDisposable {
  const pool = new pg.Pool({ connectionString: url, max });
  return Object.assign(pool, { [Symbol.asyncDispose]: () => pool.end() });
}

/** A database of its own for one test file, cloned from the migrated template; dropped on dispose. */
export async function testDatabase(): Promise<{ url: string; name: string } & AsyncDisposable> {
  const name = testDbName();
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DB}`);
        break;
      } catch (e) {
        // Another session on the template (a concurrent clone): try again shortly.
        if ((e as { code?: string }).code !== "55006" || attempt >= 20) throw e;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  } finally {
    await admin.end();
  }
  return disposable(name);
}

/**
 * A database name of its own on the server of `engine`, not yet created (the platform's migration
 * creates it); dropped on dispose.
 */
export async function namedDatabase(engine: Engine = "plain"): Promise<{ url: string; name: string } & AsyncDisposable> {
  return disposable(testDbName(), engine);
}

function disposable(name: string, engine: Engine = "plain"): { url: string; name: string } & AsyncDisposable {
  return {
    name,
    url: dbUrl(name, engine),
    async [Symbol.asyncDispose]() {
      const c = new pg.Client({ connectionString: adminUrl(engine) });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/**
 * Why the TimescaleDB server (TEST_TSDB_PG_URL) cannot run the TimescaleDB path, or null when it
 * can: reachable, the extension installed and preloaded.
 */
export async function timescaleMissing(): Promise<string | null> {
  const c = new pg.Client({ connectionString: TSDB_ADMIN_URL, connectionTimeoutMillis: 5000 });
  c.on("error", () => {});
  try {
    await c.connect();
  } catch (e) {
    return `no PostgreSQL answers at ${TSDB_ADMIN_URL} (${(e as Error).message})`;
  }
  try {
    const r = await c.query<{ available: boolean; preloaded: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
              coalesce(current_setting('shared_preload_libraries', true), '') LIKE '%timescaledb%' AS preloaded`,
    );
    const { available, preloaded } = r.rows[0]!;
    if (!available) return `the PostgreSQL at ${TSDB_ADMIN_URL} has no timescaledb extension`;
    if (!preloaded) return `the PostgreSQL at ${TSDB_ADMIN_URL} does not preload timescaledb (shared_preload_libraries)`;
    return null;
  } finally {
    await c.end();
  }
}

let checked: Promise<string | null> | undefined;

/**
 * Whether the TimescaleDB tests can run; `what` names them in the warning when they skip. Where
 * the run requires TimescaleDB (CI), a missing server throws instead: nothing skips silently there.
 */
export async function timescaleAvailable(what = "the TimescaleDB tests"): Promise<boolean> {
  const why = await (checked ??= timescaleMissing());
  if (why && TIMESCALEDB_REQUIRED) throw new Error(`TimescaleDB is required in this run (CI): ${why}`);
  if (why) console.warn(`SKIPPED: ${what}: ${why} (start it with ../shared/timescaledb/install --port 5433, or set TEST_TSDB_PG_URL)`);
  return !why;
}
