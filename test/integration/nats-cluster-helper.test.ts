import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { natsCluster, type TestNatsCluster } from "../helpers/nats-cluster.ts";

// The three-server helper itself: an R3 stream keeps taking messages when one server is killed
// (the client moves to another server), and the killed server catches up once started again.

let cluster: TestNatsCluster;

beforeAll(async () => {
  cluster = await natsCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

describe("natsCluster", () => {
  it("replicates a stream on three servers, survives a kill -9 and catches the server up", async () => {
    // Connected to server 0 first: its death makes the client move.
    await using nc = await connect({ servers: cluster.servers, noRandomize: true, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "helper", subjects: ["helper.>"], num_replicas: 3 });
    const js = jetstream(nc);
    for (let i = 0; i < 50; i++) await js.publish("helper.x", `a${i}`);
    const before = await jsm.streams.info("helper");
    expect(before.cluster?.replicas?.length).toBe(2);

    await cluster.kill(0);
    expect(cluster.running(0)).toBe(false);
    // Publishes retried until the client is on a survivor and the stream has a leader there.
    for (let i = 0; i < 50; i++) {
      for (let attempt = 0; ; attempt++) {
        try {
          await js.publish("helper.x", `b${i}`, { msgID: `b${i}` });
          break;
        } catch (e) {
          if (attempt > 100) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    expect((await jsm.streams.info("helper")).state.messages).toBe(100);
    expect(cluster.names).toContain(await cluster.waitMetaLeader());

    await cluster.start(0);
    await cluster.waitHealthy(0);
    // Server 0 alone answers with its own copy: a direct get of the last message from it.
    {
      await using only0 = await connect({ servers: cluster.servers[0]! });
      const jsm0 = await jetstreamManager(only0);
      const info = await jsm0.streams.info("helper");
      expect(info.state.messages).toBe(100);
      const peers = [info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)];
      expect(peers).toContain(cluster.names[0]);
      // The leader marks a replica current a moment after the replica says it is healthy.
      const end = Date.now() + 30_000;
      while (!((await jsm0.streams.info("helper")).cluster?.replicas ?? []).every((r) => r.current)) {
        expect(Date.now()).toBeLessThan(end);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }, 120_000);
});
