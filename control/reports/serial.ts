import pg from "pg";
import { withClient } from "../../ingest/index.ts";
import type { Db, Tx } from "../db.ts";

/**
 * Runs a report's reads on one connection with no parallel workers (a read-only transaction with
 * max_parallel_workers_per_gather = 0 for its length). The planner chose parallel plans for the
 * report aggregates (a parallel append over a UNION ALL, which TimescaleDB's real-time views are
 * too), and each one started workers that cost more than they saved: at a load average of 8-15,
 * a report by region took 3-6 times as long in wall time as its CPU time alone, and in the quiet
 * benchmark 147 ms at p50 for about 50 ms of work (docs/analytics.md). Given a connection of the
 * caller's (a transaction of its own), runs on it as it is.
 */
export async function serialReads<T>(db: Db | Tx, fn: (q: Db | Tx) => Promise<T>): Promise<T> {
  if (!(db instanceof pg.Pool)) return fn(db);
  return withClient(db, async (c) => {
    await c.query("BEGIN READ ONLY; SET LOCAL max_parallel_workers_per_gather = 0");
    try {
      const out = await fn(c);
      await c.query("COMMIT");
      return out;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      throw e;
    }
  });
}
