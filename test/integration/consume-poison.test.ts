import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { subjects } from "../../contracts/index.ts";
import { ensureTopology, PoisonMessageError, runConsumer } from "../../ingest/index.ts";
import { NATS_URL, testPrefix } from "../helpers/env.ts";
import { removeNatsState, until } from "../helpers/platform.ts";

/**
 * Found by the message fuzz run: a poison message was terminated with a reason (`+TERM <reason>`),
 * which nats-server before 2.11 does not understand and ignores. The message stayed unacknowledged,
 * came back every ack wait, and once a consumer held max_ack_pending of them it received nothing
 * else: 2,000 malformed terminal events stopped the control service's event handling.
 */

let nc: NatsConnection;
const prefix = testPrefix();
const s = subjects(prefix);

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  await ensureTopology(nc, s, { maxBytes: 8 * 2 ** 20, telemetryMaxAgeDays: 1 });
});
afterAll(async () => {
  await nc?.close();
  await removeNatsState(prefix);
});

describe("the consume loop and poison messages", () => {
  it("acknowledges a dead-lettered message for good, so more of them than max_ack_pending cannot stall the consumer", async () => {
    const js = jetstream(nc);
    const poison = 8;
    for (let i = 0; i < poison; i++) await js.publish(s.evt("G1", "T1"), `not json ${i}`);
    await js.publish(s.evt("G1", "T1"), JSON.stringify({ ok: true }));

    const handled: unknown[] = [];
    const letters: string[] = [];
    const consumer = await runConsumer<unknown>({
      nc,
      log: pino({ level: "silent" }),
      stream: s.streams.events,
      durable: s.consumer("poison_test"),
      // Fewer in flight than there are poison messages, and a long ack wait: a poison message that
      // is not really acknowledged blocks the good one behind it for the whole test.
      maxAckPending: 4,
      ackWaitS: 120,
      maxBatch: 2,
      decode: (m) => {
        const text = new TextDecoder().decode(m.data);
        if (text.startsWith("not json")) throw new PoisonMessageError("payload is not JSON", "not_json");
        return { items: [JSON.parse(text)], rejects: [] };
      },
      deadLetter: async (_m, r) => void letters.push(r.reason),
      handle: async (items) => void handled.push(...items),
    });
    try {
      await until(async () => handled.length === 1, 15_000);
      expect(letters).toHaveLength(poison);
      const jsm = await jetstreamManager(nc);
      await until(async () => (await jsm.consumers.info(s.streams.events, s.consumer("poison_test"))).num_ack_pending === 0, 10_000);
    } finally {
      await consumer.stop();
    }
  });
});
