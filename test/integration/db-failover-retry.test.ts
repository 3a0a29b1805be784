import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommitUnknownError, createPool, inTx, type Db } from "../../control/index.ts";
import { pgClient, testDatabase } from "../helpers/database.ts";
import { until } from "../helpers/platform.ts";
import { tcpProxy, type TcpProxy } from "../helpers/tcp-proxy.ts";

// inTx across a lost database (control/db.ts; docs/backup-and-restore.md, "Work in flight across
// a failover"), on the real server through a proxy the test cuts: work cut before its COMMIT is
// done again; a COMMIT that committed but whose answer was lost is found by `committed`, done
// again only when `idempotent`, and otherwise surfaces as CommitUnknownError (503).

let db: Awaited<ReturnType<typeof testDatabase>>;
let proxy: TcpProxy;
let pool: Db;

const rows = async (id: string) => {
  await using c = await pgClient(db.url);
  return Number((await c.query("SELECT count(*) AS n FROM retry_probe WHERE id = $1", [id])).rows[0].n);
};

/**
 * The connection lost for `ms`, as in a failover: every socket reset, new ones refused, then back.
 * Resolves once it is back.
 */
const outage = async (ms: number): Promise<void> => {
  await proxy.cut();
  await new Promise((r) => setTimeout(r, ms));
  proxy.muteReplies(false);
  await proxy.restore();
};

/** The outage once `id`'s row is committed (seen on a connection of its own, not through the proxy): its COMMIT reached the server, only its answer is lost. */
const outageOnceCommitted = (id: string): Promise<void> => until(async () => (await rows(id)) === 1).then(() => outage(500));

beforeAll(async () => {
  db = await testDatabase();
  {
    await using setup = await pgClient(db.url);
    await setup.query("CREATE TABLE retry_probe (id text PRIMARY KEY, n int NOT NULL)");
  }
  proxy = await tcpProxy("127.0.0.1", 5432);
  const u = new URL(db.url);
  u.port = String(proxy.port);
  pool = createPool(u.toString(), () => {}, 2, undefined, { failoverWaitMs: 15_000 });
});
afterAll(async () => {
  await pool?.end();
  await proxy?.[Symbol.asyncDispose]();
  await db?.[Symbol.asyncDispose]();
});

describe("a transaction across a lost connection", () => {
  it("cut before COMMIT: nothing committed, the work is done again once the database is back", async () => {
    let runs = 0;
    const out = await inTx(pool, async (tx) => {
      runs++;
      await tx.query("INSERT INTO retry_probe VALUES ('a', $1)", [runs]);
      if (runs === 1) {
        void outage(700);
        await tx.query("SELECT pg_sleep(0.2)");
      }
      return runs;
    });
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(out).toBe(runs);
    expect(await rows("a")).toBe(1);
  }, 30_000);

  it("COMMIT done but its answer lost: `committed` finds it, the work is not done twice", async () => {
    let runs = 0;
    const out = await inTx(
      pool,
      async (tx) => {
        runs++;
        await tx.query("INSERT INTO retry_probe VALUES ('b', 1)");
        // The COMMIT reaches the server; its answer does not come back before the connection dies.
        proxy.muteReplies(true);
        void outageOnceCommitted("b");
        return "first";
      },
      { committed: async (tx) => ((await tx.query("SELECT 1 FROM retry_probe WHERE id = 'b'")).rowCount ? "found" : null) },
    );
    expect(runs).toBe(1);
    expect(out).toBe("found");
    expect(await rows("b")).toBe(1);
  }, 30_000);

  it("COMMIT answer lost, idempotent: done again, and its key keeps it once", async () => {
    let runs = 0;
    await inTx(
      pool,
      async (tx) => {
        runs++;
        await tx.query("INSERT INTO retry_probe VALUES ('c', 1) ON CONFLICT (id) DO NOTHING");
        if (runs === 1) {
          proxy.muteReplies(true);
          void outageOnceCommitted("c");
        }
      },
      { idempotent: true },
    );
    expect(runs).toBe(2);
    expect(await rows("c")).toBe(1);
  }, 30_000);

  it("COMMIT answer lost, neither: CommitUnknownError (a 503), though the row did commit", async () => {
    let over: Promise<void> | undefined;
    const err = await inTx(pool, async (tx) => {
      await tx.query("INSERT INTO retry_probe VALUES ('d', 1)");
      proxy.muteReplies(true);
      over = outageOnceCommitted("d");
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommitUnknownError);
    expect((err as CommitUnknownError).code).toBe("08007");
    // The outage over (nothing of it left for afterAll), and the row there.
    await over;
    expect(await rows("d")).toBe(1);
  }, 30_000);
});
