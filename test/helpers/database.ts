import pg from "pg";
import { PG_ADMIN_URL, TEMPLATE_DB, dbUrl, rand } from "./env.ts";

/** A database of its own for one test file, cloned from the migrated template; dropped on dispose. */
export async function testDatabase(): Promise<{ url: string; name: string } & AsyncDisposable> {
  const name = `vt_${rand()}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DB}`);
  } finally {
    await admin.end();
  }
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
