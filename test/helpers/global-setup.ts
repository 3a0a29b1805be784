import pg from "pg";
import { connect } from "@nats-io/transport-node";
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
    await nc.close();
  } catch (e) {
    throw new Error(`NATS is not reachable at ${NATS_URL}: ${(e as Error).message}`);
  }
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`);
  await admin.end();
  await migrate(dbUrl(TEMPLATE_DB));
}
