import pg from "pg";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { migrate } from "../../sql/index.ts";
import { timescaleMissing } from "./database.ts";
import { NATS_URL, PG_ADMIN_URL, RUN_ID, TEMPLATE_DB, TIMESCALEDB_REQUIRED, TSDB_ADMIN_URL, dbUrl, runLockKey } from "./env.ts";

/**
 * Checks the real servers are there, clears what dead runs left behind, and builds this run's
 * migrated template database that every test file clones (CREATE DATABASE ... TEMPLATE is far
 * faster than migrating per file). The run holds an advisory lock named after its id until it ends,
 * so a concurrent run on the same servers sees it alive and leaves its databases and streams alone.
 * The TimescaleDB server (TEST_TSDB_PG_URL) gets the same clearing; where the run requires it (CI)
 * and it is missing, the run fails here, before any test.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const lock = new pg.Client({ connectionString: PG_ADMIN_URL });
  try {
    await lock.connect();
  } catch (e) {
    throw new Error(`PostgreSQL is not reachable at ${PG_ADMIN_URL}: ${(e as Error).message}`);
  }
  await lock.query("SELECT pg_advisory_lock(hashtext($1))", [runLockKey(RUN_ID)]);
  const alive = async (run: string): Promise<boolean> => {
    if (run === RUN_ID) return true;
    const r = await lock.query<{ got: boolean }>("SELECT pg_try_advisory_lock(hashtext($1)) AS got", [runLockKey(run)]);
    if (r.rows[0]!.got) await lock.query("SELECT pg_advisory_unlock(hashtext($1))", [runLockKey(run)]);
    return !r.rows[0]!.got;
  };
  const verdicts = new Map<string, boolean>();
  const dead = async (run: string) => {
    if (!verdicts.has(run)) verdicts.set(run, await alive(run));
    return !verdicts.get(run);
  };

  try {
    const nc = await connect({ servers: NATS_URL, timeout: 3000 });
    const jsm = await jetstreamManager(nc);
    for await (const si of jsm.streams.list()) {
      // Test prefixes are t<run 4><6 random>; older runs used t<8 random> (no run: always stale).
      const m = /^(?:KV_)?t([a-z0-9]{4})[a-z0-9]{6}_/.exec(si.config.name);
      const old = /^(?:KV_)?t[a-z0-9]{8}_/.test(si.config.name);
      if ((m && (await dead(m[1]!))) || (!m && old)) await jsm.streams.delete(si.config.name).catch(() => {});
    }
    await nc.close();
  } catch (e) {
    throw new Error(`NATS is not reachable at ${NATS_URL}: ${(e as Error).message}`);
  }
  const clearStale = async (c: pg.Client) => {
    const dbs = await c.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'vt\\_%' OR datname LIKE 'vtt\\_%' OR datname = 'voltvend_test_template'",
    );
    for (const { datname } of dbs.rows) {
      const m = /^vtt?_([a-z0-9]{4})(?:_|$)/.exec(datname);
      if (m && !(await dead(m[1]!))) continue;
      await dropDatabase(c, datname);
    }
  };
  await clearStale(lock);

  // The TimescaleDB path's server: its test files migrate databases of their own there. Runs are
  // told alive or dead by their lock on the main server, whichever server their databases are on.
  const missing = await timescaleMissing();
  if (missing && TIMESCALEDB_REQUIRED) {
    await lock.end();
    throw new Error(`TimescaleDB is required in this run (CI): ${missing}`);
  }
  if (missing) console.warn(`The TimescaleDB tests will skip: ${missing}`);
  else {
    const tsdb = new pg.Client({ connectionString: TSDB_ADMIN_URL });
    await tsdb.connect();
    try {
      await clearStale(tsdb);
    } finally {
      await tsdb.end();
    }
  }
  // The plain-PostgreSQL path; the TimescaleDB tests migrate databases of their own.
  await migrate(dbUrl(TEMPLATE_DB), () => {}, "plain");
  // Nobody connects to the template from now on (TimescaleDB's launcher visits every database
  // that allows connections, which would make CREATE DATABASE ... TEMPLATE fail now and then).
  await lock.query(`ALTER DATABASE ${TEMPLATE_DB} WITH ALLOW_CONNECTIONS false`);
  await lock.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [TEMPLATE_DB]);

  return async () => {
    await dropDatabase(lock, TEMPLATE_DB).catch(() => {});
    await lock.end();
  };
}

async function dropDatabase(c: pg.Client, name: string): Promise<void> {
  await c.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true`).catch(() => {});
  await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}
