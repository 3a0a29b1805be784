import pg from "pg";

// bigint columns (money, registers) come back as strings by default; money stays exact as
// JavaScript numbers up to 2^53 cents, far beyond any wallet, so int8 parses to number here.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 ${v} is beyond exact JavaScript numbers`);
  return n;
});

export type Db = pg.Pool;
export type Tx = pg.PoolClient;

export function createPool(databaseUrl: string, onIdleError: (e: Error) => void, max = 20): Db {
  const pool = new pg.Pool({ connectionString: databaseUrl, max, application_name: "voltvend" });
  // An idle connection can die with the server (restart, failover); the pool replaces it, and an
  // unhandled 'error' event would otherwise end the process.
  pool.on("error", onIdleError);
  return pool;
}

/** Runs fn in a transaction; retries once on serialization failure or deadlock. */
export async function inTx<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const client = await db.connect();
    try {
      await client.query("BEGIN");
      const out = await fn(client);
      await client.query("COMMIT");
      return out;
    } catch (e) {
      await client.query("ROLLBACK").catch(() => {});
      const code = (e as { code?: string }).code;
      if (attempt < 2 && (code === "40001" || code === "40P01")) continue;
      throw e;
    } finally {
      client.release();
    }
  }
}
