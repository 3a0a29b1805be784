import pg from "pg";
import { guardClient, withClient } from "../ingest/index.ts";
import { parseDatabaseUrl } from "../contracts/index.ts";
import { primaryClientClass, primaryResolver, type PrimaryResolver } from "./primary.ts";

/**
 * bigint columns (money, registers) come back as strings by default; money stays exact as
 * JavaScript numbers up to 2^53 cents, far beyond any wallet, so int8 parses to number. pg's
 * parsers are the process's: this is called once at start, by each entry point (cli/main.ts, the
 * benchmarks' runners, the tests' setup file), never as a side effect of an import.
 */
export function parseInt8AsNumber(): void {
  pg.types.setTypeParser(pg.types.builtins.INT8, (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new RangeError(`int8 ${v} is beyond exact JavaScript numbers`);
    return n;
  });
}

export type Db = pg.Pool;
export type Tx = pg.PoolClient;

/**
 * How long a request waits for a connection (a new one, or a free one of a busy pool) before it
 * fails as unavailable: without it, a server that does not answer (a cut network) holds every
 * caller for as long as the kernel tries to connect.
 */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The pool of the platform's writes. DATABASE_URL may list several hosts: every new connection
 * goes to the current primary among them (control/primary.ts), so after a failover the pool
 * reconnects to the new one by itself; the connections to the old one die with it.
 */
export function createPool(databaseUrl: string, onIdleError: (e: Error) => void, max = 20, resolver: PrimaryResolver = primaryResolver(databaseUrl)): Db {
  const pool = new pg.Pool({
    Client: primaryClientClass(resolver),
    // User, database and parameters; the host and port each connection takes from the resolver.
    connectionString: parseDatabaseUrl(databaseUrl).urlFor(0),
    max,
    application_name: "voltvend",
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // A peer that vanished without closing (a cut network) is noticed on an idle connection too.
    keepAlive: true,
  });
  // An idle connection can die with the server (restart, failover); the pool replaces it, and an
  // unhandled 'error' event would otherwise end the process.
  pool.on("error", onIdleError);
  // So can one that is checked out (see guardClient): every client of the pool gets a listener.
  pool.on("connect", guardClient);
  return pool;
}

/** Runs fn in a transaction; retries once on serialization failure or deadlock. */
export async function inTx<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const out = await withClient(db, async (client) => {
      try {
        await client.query("BEGIN");
        const value = await fn(client);
        await client.query("COMMIT");
        return { value };
      } catch (e) {
        // A lost connection rolls back by itself; the ROLLBACK just fails, and is not the error.
        await client.query("ROLLBACK").catch(() => {});
        const code = (e as { code?: string }).code;
        if (attempt < 2 && (code === "40001" || code === "40P01")) return null;
        throw e;
      }
    });
    if (out) return out.value;
  }
}
