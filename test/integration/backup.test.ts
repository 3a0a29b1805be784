import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { subjects as makeSubjects } from "../../contracts/index.ts";
import { newRegistry } from "../../control/index.ts";
import { backedUpStreams, ensureTopology, startBackupSink } from "../../ingest/index.ts";
import { rand } from "../helpers/env.ts";
import { natsServer, type TestNatsServer } from "../helpers/nats-server.ts";
import { until } from "../helpers/platform.ts";
import { streamMessages } from "../helpers/streams.ts";

// Two servers of the test's own: the platform's and the independent backup store. Both are
// restarted while data flows; the backup must end up with every message exactly once.
let primary: TestNatsServer;
let backup: TestNatsServer;
let pnc: NatsConnection;
let bnc: NatsConnection;
const s = makeSubjects(`b${rand()}`);
const opts = { maxReconnectAttempts: -1, reconnectTimeWait: 100 } as const;

beforeAll(async () => {
  primary = await natsServer();
  backup = await natsServer();
  pnc = await connect({ servers: primary.url, ...opts });
  bnc = await connect({ servers: backup.url, ...opts });
  await ensureTopology(pnc, s, { maxBytes: 64 * 2 ** 20, telemetryMaxAgeDays: 7 });
});
afterAll(async () => {
  await pnc?.close();
  await bnc?.close();
  await primary?.stop();
  await backup?.stop();
});

/** Publishes with JetStream, retrying through a server restart; each message once (its own id). */
async function publish(js: JetStreamClient, subject: string, data: object, id: string) {
  for (let i = 0; ; i++) {
    try {
      await js.publish(subject, JSON.stringify(data), { msgID: id, timeout: 1000 });
      return;
    } catch (e) {
      if (i > 100) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe("the backup store (flow 111)", () => {
  it("holds every reading, event, dead letter, session and fault exactly once after both servers restart", { timeout: 150_000 }, async () => {
    const sink = await startBackupSink({ nc: pnc, backupNc: bnc, subjects: s, log: pino({ level: "silent" }), registry: newRegistry(false) });
    const js = jetstream(pnc);
    const sent: Record<string, number> = {};
    const send = async (stream: string, subject: string, data: object, id: string) => {
      await publish(js, subject, data, id);
      sent[stream] = (sent[stream] ?? 0) + 1;
    };
    const wave = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        await send(s.streams.telemetry, s.tel("G1", "T1"), { ts: i, seq: i, state: "on", currentA: 16, voltageV: 220, energyWh: i }, `r${i}`);
        if (i % 10 === 0) await send(s.streams.events, s.evt("G1", "T1"), { type: "boot", energyWh: i, ts: i }, `e${i}`);
        if (i % 25 === 0) await send(s.streams.results, s.sessionRecord("T1"), { sessionId: `S${i}` }, `s${i}`);
        if (i % 50 === 0) await send(s.streams.faults, s.fault("FR1", "T1"), { faultId: `F${i}` }, `f${i}`);
        if (i % 40 === 0) await send(s.streams.dlq, s.dlq("G1"), { subject: "x", reason: "test", payload: "{}" }, `d${i}`);
      }
    };
    await wave(0, 300);
    await backup.restart();
    await wave(300, 600);
    await primary.restart();
    await wave(600, 900);
    await Promise.all([primary.restart(300), backup.restart(300)]);
    await wave(900, 1000);

    // Every source message acknowledged by the sink's consumers, which acknowledge a batch only
    // once the backup stored it: nothing more is on its way, so what the backup holds is all.
    const jsm = await jetstreamManager(pnc);
    await until(async () => {
      for (const stream of backedUpStreams(s)) {
        const mine = [];
        for await (const c of jsm.consumers.list(stream)) mine.push(c);
        if (mine.length === 0 || mine.some((c) => c.num_pending > 0 || c.num_ack_pending > 0)) return false;
      }
      return true;
    }, 60_000);
    const all = await streamMessages(bnc, s.streams.backup);
    expect(all.length).toBe(Object.values(sent).reduce((a, b) => a + b, 0));
    for (const stream of backedUpStreams(s)) {
      const mine = all.filter((m) => m.headers?.["Vv-Source-Stream"] === stream);
      const seqs = mine.map((m) => Number(m.headers!["Vv-Source-Seq"]));
      // Every source sequence 1..n, once each, in order: no gap, no duplicate.
      expect(seqs, stream).toEqual(Array.from({ length: sent[stream] ?? 0 }, (_, i) => i + 1));
    }
    const firstReading = all.find((m) => m.subject === s.backup(s.tel("G1", "T1")))!;
    expect(firstReading.data).toMatchObject({ ts: 0, seq: 0 });
    await sink.stop();
  });
});
