import pg from "pg";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { migrate } from "../../sql/index.ts";
import { NATS_URL, PG_ADMIN_URL, TEMPLATE_DB, dbUrl } from "./env.ts";

/**
 * Checks the real servers are there, and builds the migrated template database that every test
 * file clones (CREATE DATABASE ... TEMPLATE is far faster than migrating per file).
 */
export default async function setup(): Promise<void> {
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  try {
    await admin.connect();
  } catch (e) {
    throw new Error(`PostgreSQL is not reachable at ${PG_ADMIN_URL}: ${(e as Error).message}`);
  }
  try {
    const nc = await connect({ servers: NATS_URL, timeout: 3000 });
    // Streams of test files that an earlier, interrupted run could not delete (prefixes t<8 chars>).
    const jsm = await jetstreamManager(nc);
    for await (const si of jsm.streams.list()) {
      if (/^(KV_)?t[a-z0-9]{8}_/.test(si.config.name)) await jsm.streams.delete(si.config.name);
    }
    await nc.close();
  } catch (e) {
    throw new Error(`NATS is not reachable at ${NATS_URL}: ${(e as Error).message}`);
  }
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`).catch(async (e) => {
    // A template that forbids connections is dropped after allowing them again.
    if (!/ALLOW_CONNECTIONS|not currently accepting/i.test(String(e))) throw e;
  });
  // Databases of test files that an earlier, interrupted run could not drop.
  const stale = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'vt\\_%'");
  for (const r of stale.rows) await admin.query(`DROP DATABASE IF EXISTS ${r.datname} WITH (FORCE)`);
  await admin.end();
  // The plain-PostgreSQL path; the TimescaleDB tests migrate databases of their own.
  await migrate(dbUrl(TEMPLATE_DB), () => {}, "plain");
  // Nobody connects to the template from now on (TimescaleDB's launcher visits every database
  // that allows connections, which would make CREATE DATABASE ... TEMPLATE fail now and then).
  const a2 = new pg.Client({ connectionString: PG_ADMIN_URL });
  await a2.connect();
  await a2.query(`ALTER DATABASE ${TEMPLATE_DB} WITH ALLOW_CONNECTIONS false`);
  await a2.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [TEMPLATE_DB]);
  await a2.end();
}
