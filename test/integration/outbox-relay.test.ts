import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { InvalidArgumentError, nanos } from "@nats-io/nats-core";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enqueue, OUTBOX_MAX_BYTES, OutboxRelayError, relayOutbox } from "../../control/internal.ts";
import { pgPool, testDatabase } from "../helpers/database.ts";
import { NATS_URL, testPrefix } from "../helpers/env.ts";
import { streamMessages } from "../helpers/streams.ts";

// The outbox relay (control/outbox.ts): a message the server can never take (over its max_payload,
// as a city franchisee's daily package was before it went in parts) must not hold back the messages
// behind it, which it did, every round; and the outbox refuses such a message when it is recorded.
describe("the outbox relay and a message that can never be published", () => {
  const prefix = testPrefix();
  const stream = `${prefix}_OUT`;
  let db: Awaited<ReturnType<typeof testDatabase>>;
  let pool: ReturnType<typeof pgPool>;
  let nc: NatsConnection;
  beforeAll(async () => {
    db = await testDatabase();
    pool = pgPool(db.url, 2);
    nc = await connect({ servers: NATS_URL });
    // A duplicate window of 100 ms (not the default 2 min), so that a message published again in a
    // later round is stored again, and counted, rather than dropped by its message id.
    await (await jetstreamManager(nc)).streams.add({ name: stream, subjects: [`${prefix}.out.>`], max_bytes: 4 * 2 ** 20, duplicate_window: nanos(100) });
  });
  afterAll(async () => {
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => {});
    await nc?.close();
    await pool?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  it("publishes and deletes the others, keeps the one it cannot publish and says which, every round", async () => {
    const max = nc.info!.max_payload;
    // Recorded before the bound existed: a row as old daily packages were, then ordinary messages behind it.
    await pool.query("INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES ($1, 'big', $2::jsonb, now() - interval '1 minute')", [`${prefix}.out.big`, JSON.stringify({ blob: "x".repeat(max + 10) })]);
    for (let i = 0; i < 5; i++)
      await pool.query("INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES ($1, $2, $3::jsonb, now() - interval '1 minute')", [`${prefix}.out.m`, `m${i}`, JSON.stringify({ i })]);

    const js = jetstream(nc);
    const first = await relayOutbox(pool, js).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(OutboxRelayError);
    expect((first as OutboxRelayError).failed.map((f) => f.msgId)).toEqual(["big"]);
    // The cause is the client's own refusal, kept.
    expect((first as OutboxRelayError).cause).toBeInstanceOf(InvalidArgumentError);
    const left = async () => (await pool.query<{ msg_id: string }>("SELECT msg_id FROM outbox ORDER BY id")).rows.map((r) => r.msg_id);
    expect(await left()).toEqual(["big"]);
    expect((await streamMessages<{ i: number }>(nc, stream)).map((m) => m.data.i)).toEqual([0, 1, 2, 3, 4]);

    // The next round, past the duplicate window (real time that must pass): the same refusal, the
    // row still kept (nothing is lost), nothing published twice.
    await new Promise((r) => setTimeout(r, 300));
    await pool.query("INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES ($1, 'm5', '{\"i\":5}', now() - interval '1 minute')", [`${prefix}.out.m`]);
    await expect(relayOutbox(pool, js)).rejects.toBeInstanceOf(OutboxRelayError);
    expect(await left()).toEqual(["big"]);
    expect((await streamMessages<{ i: number }>(nc, stream)).map((m) => m.data.i)).toEqual([0, 1, 2, 3, 4, 5]);
    expect((await (await jetstreamManager(nc)).streams.info(stream)).state.messages).toBe(6);
  });

  it("refuses, in the transaction that would record it, a message over OUTBOX_MAX_BYTES", async () => {
    const c = await pool.connect();
    try {
      await c.query("BEGIN");
      await expect(enqueue(c, `${prefix}.out.x`, "too-big", { blob: "y".repeat(OUTBOX_MAX_BYTES) })).rejects.toThrow(/too-big .* takes \d+ bytes, over the outbox's 524288/);
      await c.query("ROLLBACK");
      await c.query("BEGIN");
      const ok = await enqueue(c, `${prefix}.out.x`, "fits", { blob: "y".repeat(1000) });
      await c.query("COMMIT");
      expect(ok.msgId).toBe("fits");
    } finally {
      c.release();
    }
  });
});
