import pg from "pg";
import { guardClient, unavailableDependency, withClient } from "../ingest/index.ts";
import { parseDatabaseUrl } from "../contracts/index.ts";
import { primaryClientClass, primaryResolver, standbyResolver, type PrimaryResolver } from "./primary.ts";

/**
 * bigint columns (money, registers) come back as strings by default; money stays exact as
 * JavaScript numbers up to 2^53 cents, far beyond any wallet, so int8 parses to number. pg's
 * parsers are the process's: this is called once at start, by each entry point (cli/main.ts, the
 * benchmarks' runners, the tests' setup file), never as a side effect of an import.
 */
/**
 * A bigint the database computed (a report's total) that JavaScript numbers, and so JSON answers,
 * cannot carry exactly: refused rather than rounded (HTTP 422 `too_large`).
 */
export class Int8OverflowError extends RangeError {
  override name = "Int8OverflowError";
}

export function parseInt8AsNumber(): void {
  pg.types.setTypeParser(pg.types.builtins.INT8, (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new Int8OverflowError(`int8 ${v} is beyond exact JavaScript numbers`);
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
export function createPool(
  databaseUrl: string,
  onIdleError: (e: Error) => void,
  max = 20,
  resolver: PrimaryResolver = primaryResolver(databaseUrl),
  o: { failoverWaitMs?: number; reads?: boolean } = {},
): Db {
  const pool = new pg.Pool({
    Client: primaryClientClass(resolver, { writes: !o.reads }),
    // User, database and parameters; the host and port each connection takes from the resolver.
    connectionString: parseDatabaseUrl(databaseUrl).urlFor(0),
    max,
    application_name: o.reads ? "voltvend-reports" : "voltvend",
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // A peer that vanished without closing (a cut network) is noticed on an idle connection too.
    keepAlive: true,
    // Reads: connections renewed, so that each new one asks the resolver where the standby is now.
    ...(o.reads ? { maxLifetimeSeconds: READ_POOL_LIFETIME_S } : {}),
  });
  // An idle connection can die with the server (restart, failover); the pool replaces it, and an
  // unhandled 'error' event would otherwise end the process.
  pool.on("error", onIdleError);
  // So can one that is checked out (see guardClient): every client of the pool gets a listener.
  pool.on("connect", guardClient);
  failoverWait.set(pool, o.failoverWaitMs ?? 0);
  return pool;
}

/**
 * How long a connection of the read pool lives. A standby promoted by a failover keeps its
 * connections, so without an end to them the reports would stay on the (new) primary for good,
 * also once the old primary is back as the standby: renewed, each new connection goes where the
 * read resolver says (asked again every STANDBY_RECHECK_MS), so reports are back on a standby
 * within about a minute and a half of its return.
 */
export const READ_POOL_LIFETIME_S = 60;

/**
 * The pool that reports read from (READ_DATABASE_URL): its connections go to the first standby
 * among the URL's hosts, or to the primary when no standby answers (control/primary.ts,
 * standbyResolver). Nothing is written through it.
 */
export function createReadPool(readUrl: string, onIdleError: (e: Error) => void, max = 10): Db {
  return createPool(readUrl, onIdleError, max, standbyResolver(readUrl), { reads: true });
}

/**
 * How far behind the primary the data this pool reads is, in ms: 0 on a primary, and on a standby
 * 0 when it has replayed all it received, else the age of the last transaction it replayed (the
 * usual replica-lag measure: an idle primary sends nothing, so "received = replayed" is caught up).
 */
export async function readLagMs(db: Db): Promise<number> {
  const r = await db.query<{ lag: string | null }>(
    `SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                 ELSE round(1000 * extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END::text AS lag`,
  );
  return Math.max(0, Number(r.rows[0]?.lag ?? 0));
}

/** Per pool: how long its transactions wait for the database to come back (DB_FAILOVER_WAIT_MS). */
const failoverWait = new WeakMap<pg.Pool, number>();

/**
 * A COMMIT was sent and its answer lost with the connection: the transaction may have committed
 * or not. `08007` is PostgreSQL's own name for it (transaction_resolution_unknown), so the outage
 * classifier counts it as the database being unavailable.
 */
export class CommitUnknownError extends Error {
  override name = "CommitUnknownError";
  readonly code = "08007";
  constructor(cause: unknown) {
    super("the connection was lost during COMMIT: the transaction may or may not have committed", { cause });
  }
}

export interface TxOptions<T> {
  /**
   * fn may run again after a COMMIT whose answer was lost, because running it twice does what
   * running it once does (a top-up by its reference, a session transition guarded by its state).
   */
  idempotent?: boolean;
  /**
   * After a COMMIT whose answer was lost: what the committed work returns, looked up on the
   * database that answers now (the new primary, which had the commit synchronously), or null
   * when it did not commit, and fn runs again.
   */
  committed?: (tx: Tx) => Promise<T | null>;
}

/**
 * Runs `attempt` again while it fails because the database is unavailable (a failover under way,
 * a lost connection), for up to the pool's DB_FAILOVER_WAIT_MS, backing off from 200 ms to 2 s;
 * then the last error (503 at the HTTP edge). Only for work that is safe to do again: reads, and
 * transactions (inTx, which knows whether its COMMIT was sent).
 */
export async function whileDbRecovers<T>(db: Db, attempt: () => Promise<T>, o: { retryUnknownCommit?: boolean } = {}): Promise<T> {
  const deadline = Date.now() + (failoverWait.get(db) ?? 0);
  for (let delay = 200; ; delay = Math.min(delay * 2, 2000)) {
    try {
      return await attempt();
    } catch (e) {
      // A COMMIT whose answer was lost is done again only where the caller said that is safe.
      if ((e instanceof CommitUnknownError && !o.retryUnknownCommit) || unavailableDependency(e) !== "database" || Date.now() + delay > deadline) throw e;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * Runs fn in a transaction; retries on serialization failure or deadlock (twice), and across a
 * failover or a lost connection (whileDbRecovers): work that failed before its COMMIT was sent
 * did not commit and is done again; when the COMMIT's answer is lost, `o.committed` looks the
 * result up, or an `o.idempotent` fn runs again, and otherwise the caller gets CommitUnknownError
 * (503: the client retries with its keys).
 */
export async function inTx<T>(db: Db, fn: (tx: Tx) => Promise<T>, o: TxOptions<T> = {}): Promise<T> {
  let unknown = false;
  return whileDbRecovers(
    db,
    async () => {
      if (unknown && o.committed) {
        const found = await withClient(db, (c) => o.committed!(c));
        if (found !== null) return found;
      }
      try {
        return await txOnce(db, fn);
      } catch (e) {
        if (e instanceof CommitUnknownError) unknown = true;
        throw e;
      }
    },
    { retryUnknownCommit: o.committed !== undefined || o.idempotent === true },
  );
}

async function txOnce<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const out = await withClient(db, async (client) => {
      let committing = false;
      try {
        await client.query("BEGIN");
        const value = await fn(client);
        committing = true;
        await client.query("COMMIT");
        return { value };
      } catch (e) {
        // A lost connection rolls back by itself; the ROLLBACK just fails, and is not the error.
        await client.query("ROLLBACK").catch(() => {});
        const code = (e as { code?: string }).code;
        if (attempt < 2 && (code === "40001" || code === "40P01")) return null;
        // A COMMIT that failed with an answer (a deferred constraint) did not commit; one that lost
        // its connection may have.
        if (committing && unavailableDependency(e) === "database") throw new CommitUnknownError(e);
        throw e;
      }
    });
    if (out) return out.value;
  }
}
