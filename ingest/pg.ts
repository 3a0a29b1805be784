import type pg from "pg";

const guarded = new WeakSet<pg.ClientBase>();

/**
 * Gives a pg client a lasting `error` listener. A connection that dies while its client is
 * checked out (the server restarted, the backend was terminated, the network cut) makes the
 * client emit `error`; pg-pool listens only while the client is idle, and an `error` event with
 * no listener ends the process. The listener need not act: the same error fails the query in
 * flight, or the next one ("not queryable"), and the pool drops a client that is no longer
 * queryable when it is released.
 */
export function guardClient(client: pg.ClientBase): void {
  if (guarded.has(client)) return;
  guarded.add(client);
  client.on("error", () => {});
}

/** Runs fn on a client checked out of the pool (guarded, see guardClient) and always releases it. */
export async function withClient<T>(db: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.connect();
  guardClient(client);
  let broken = false;
  try {
    return await fn(client);
  } catch (e) {
    // A connection to a server that lost its primary role (25006) stays open: it must not go
    // back to the pool, or the next caller gets the same refusal.
    broken = (e as { code?: string }).code === "25006";
    throw e;
  } finally {
    client.release(broken);
  }
}
