import pg from "pg";
import { PG_ADMIN_URL, TEMPLATE_DB, dbUrl, testDbName } from "./env.ts";

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

/** A database name of its own, not yet created (the platform's migration creates it); dropped on dispose. */
export async function namedDatabase(): Promise<{ url: string; name: string } & AsyncDisposable> {
  return disposable(testDbName());
}

function disposable(name: string): { url: string; name: string } & AsyncDisposable {
  return {
    name,
    url: dbUrl(name),
    async [Symbol.asyncDispose]() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Whether the server can run the TimescaleDB path: extension installed and preloaded. */
export async function timescaleAvailable(): Promise<boolean> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    const r = await c.query<{ ok: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
          AND coalesce(current_setting('shared_preload_libraries', true), '') LIKE '%timescaledb%' AS ok`,
    );
    return r.rows[0]!.ok;
  } finally {
    await c.end();
  }
}
