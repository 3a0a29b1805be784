import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { audit, listAudit } from "../../control/internal.ts";
import { pgPool, testDatabase } from "../helpers/database.ts";

describe("audit log (control/audit.ts, sql/015_audit.sql)", () => {
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let pool: ReturnType<typeof pgPool>;
  beforeAll(async () => {
    db = await testDatabase();
    pool = pgPool(db.url, 2);
  });
  afterAll(async () => {
    await pool?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  it("appends entries and lists them newest first, a page at a time", async () => {
    const actor = { sub: "ops-1", role: "admin" };
    for (let i = 0; i < 5; i++)
      await audit(pool, { actor, action: "terminal.put", objectType: "terminal", objectId: `T${i}`, before: i ? { n: i - 1 } : null, after: { n: i }, atMs: 1_700_000_000_000 + i });
    const first = await listAudit(pool, { limit: 2 });
    expect(first.items.map((e) => e.objectId)).toEqual(["T4", "T3"]);
    expect(first.items[0]).toMatchObject({ actor, at: 1_700_000_000_004, before: { n: 3 }, after: { n: 4 }, reason: null });
    const second = await listAudit(pool, { limit: 2, cursor: first.next! });
    expect(second.items.map((e) => e.objectId)).toEqual(["T2", "T1"]);
    const last = await listAudit(pool, { limit: 2, cursor: second.next! });
    expect(last.items.map((e) => e.objectId)).toEqual(["T0"]);
    expect(last.next).toBeNull();
    expect((await listAudit(pool, { limit: 10, objectId: "T0" })).items[0]!.before).toBeNull();
    await expect(listAudit(pool, { limit: 2, cursor: "bm9wZQ" })).rejects.toMatchObject({ status: 400, code: "invalid_cursor" });
  });

  it("refuses UPDATE, DELETE and TRUNCATE, even by the table's owner", async () => {
    await expect(pool.query("UPDATE audit_log SET actor_sub = 'someone-else'")).rejects.toThrow(/append-only/);
    await expect(pool.query("DELETE FROM audit_log")).rejects.toThrow(/append-only/);
    await expect(pool.query("TRUNCATE audit_log")).rejects.toThrow(/append-only/);
    expect((await pool.query("SELECT count(*)::int AS n FROM audit_log")).rows[0].n).toBe(5);
  });
});
