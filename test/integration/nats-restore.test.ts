import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTopology, restoreStreams, StreamRestoreError } from "../../ingest/index.ts";
import { pgClient } from "../helpers/database.ts";
import { NATS_URL } from "../helpers/env.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { streamMessages } from "../helpers/streams.ts";

// The platform's streams lost and brought back from the backup server (issue 16, flow 111):
// the platform runs with its backup sink; readings and a whole charge flow; then TELEMETRY and
// EVENTS are lost (deleted) and so are the stored readings; `restoreStreams` (npm run
// nats:restore) republishes the backup's copies. The restored streams hold the same messages in
// the same order, the writer stores every reading again exactly once, a second run adds nothing,
// and a stream that still holds messages is refused without --after or --force.

let tp: TestPlatform;
let nc: NatsConnection;

const count = async (sql: string) => {
  await using c = await pgClient(tp.config.DATABASE_URL);
  return Number((await c.query(sql)).rows[0].n);
};
const kept = (m: { subject: string; data: unknown }[]) => m.map((x) => ({ subject: x.subject, data: x.data }));

beforeAll(async () => {
  // The backup "server" is the same NATS here: its stream `<p>_BACKUP` is apart from the others.
  tp = await testPlatform({ BACKUP_NATS_URL: NATS_URL });
  nc = await connect({ servers: NATS_URL });
}, 60_000);
afterAll(async () => {
  await nc?.close();
  await tp?.[Symbol.asyncDispose]();
});

describe("restoring the NATS streams from the backup server", () => {
  it("brings TELEMETRY and EVENTS back in order; the writer stores every reading again, once", { timeout: 120_000 }, async () => {
    const s = tp.p.subjects;
    let sessionId = "";
    await seedFleet(tp, { terminals: ["T1", "T2"] });
    {
      await using _gw = await simGateway(tp, { T1: {}, T2: {} }, { tickMs: 100 });
      await until(async () => (await tp.api("GET", "/v1/terminals/T1")).body?.state === "available", 30_000, 100);
      expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 5_000, reference: "r1" })).status).toBe(201);
      const user = await tp.token("U1", "user");
      const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 2 }, payment: "prepaid" }, user);
      expect(r.status).toBe(201);
      sessionId = r.body.sessionId;
      await until(async () => (await tp.api("GET", `/v1/sessions/${sessionId}`)).body?.state === "completed", 60_000, 200);
    }
    const jsm = await jetstreamManager(nc);
    const telemetry = kept(await streamMessages(nc, s.streams.telemetry));
    const events = kept(await streamMessages(nc, s.streams.events));
    expect(telemetry.length).toBeGreaterThan(20);
    // The whole charge is in EVENTS: its start and its end, which is the power_off answer or the
    // terminal's own stop at its target, whichever it sent (the simulator stops at its limit and
    // the session completes on that event, before any power_off of the cloud's).
    const ofSession = events.map((e) => e.data as { type: string; sessionId?: string }).filter((e) => e.sessionId === sessionId).map((e) => e.type);
    expect(ofSession).toContain("power_on_ack");
    expect(ofSession.some((t) => t === "power_off_ack" || t === "power_off"), ofSession.join(",")).toBe(true);
    // The sink has copied everything, and the writer stored every reading.
    await until(async () => {
      const copies = await streamMessages<unknown>(nc, s.streams.backup);
      const of = (stream: string) => copies.filter((c) => c.headers?.["Vv-Source-Stream"] === stream).length;
      return of(s.streams.telemetry) === telemetry.length && of(s.streams.events) === events.length ? true : null;
    }, 30_000, 200);
    const stored = await until(async () => {
      const n = await count("SELECT count(*) AS n FROM readings");
      return n === telemetry.length ? n : null;
    }, 30_000, 200);

    // The loss: the platform down, both streams gone, the readings table emptied.
    await tp.p.stop();
    await jsm.streams.delete(s.streams.telemetry);
    await jsm.streams.delete(s.streams.events);
    await count("WITH d AS (DELETE FROM readings RETURNING 1) SELECT count(*) AS n FROM d");
    await ensureTopology(nc, s, { maxBytes: tp.config.STREAM_MAX_BYTES, telemetryMaxAgeDays: 1 });

    const restored = await restoreStreams({ nc, backupNc: nc, subjects: s, streams: [s.streams.telemetry, s.streams.events] });
    expect(restored).toEqual({ [s.streams.telemetry]: telemetry.length, [s.streams.events]: events.length });
    expect(kept(await streamMessages(nc, s.streams.telemetry))).toEqual(telemetry);
    expect(kept(await streamMessages(nc, s.streams.events))).toEqual(events);

    // Not into a stream that holds messages, unless told what to bring back; a second run (forced)
    // within the duplicate window adds nothing: every message carries its restore id.
    await expect(restoreStreams({ nc, backupNc: nc, subjects: s, streams: [s.streams.telemetry] })).rejects.toThrow(StreamRestoreError);
    await restoreStreams({ nc, backupNc: nc, subjects: s, streams: [s.streams.telemetry], force: true });
    expect((await jsm.streams.info(s.streams.telemetry)).state.messages).toBe(telemetry.length);
    await expect(restoreStreams({ nc, backupNc: nc, subjects: s, streams: [s.streams.control] })).rejects.toThrow(/not copied by the backup sink/);

    // The platform again: the writer takes the restored readings and stores each once. Counted
    // once its consumer has acknowledged the whole restored stream, so nothing is still on the way.
    await tp.restart();
    const last = (await jsm.streams.info(s.streams.telemetry)).state.last_seq;
    await until(async () => (await jsm.consumers.info(s.streams.telemetry, s.consumer("writer"))).ack_floor.stream_seq >= last, 60_000, 200);
    expect(await count("SELECT count(*) AS n FROM readings")).toBe(stored);
    // The session is still one session, completed once.
    expect(await count("SELECT count(*) AS n FROM sessions WHERE state = 'completed'")).toBe(1);
  });
});
