import { jetstreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newRegistry } from "../../control/index.ts";
import { startWriter } from "../../ingest/index.ts";
import { pgClient } from "../helpers/database.ts";
import { NATS_URL, PG_ADMIN_URL } from "../helpers/env.ts";
import { seedFleet, steppedUpTo, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { streamMessages } from "../helpers/streams.ts";

let tp: TestPlatform;
let nc: NatsConnection;
// The crash test replaces the platform's writer; its successor keeps writing for the tests after it.
const cleanup: (() => Promise<void>)[] = [];
const T0 = Date.now() - 3_600_000; // readings an hour old: well inside retention and the clock check

beforeAll(async () => {
  tp = await testPlatform({}, { parts: { cutoff: false } });
  await seedFleet(tp, { terminals: ["T1", "T2", "T3", "T4", "T5", "T6"] });
  nc = await connect({ servers: NATS_URL });
});
afterAll(async () => {
  for (const c of cleanup) await c();
  await nc?.close();
  await tp?.[Symbol.asyncDispose]();
});

const reading = (i: number, o: Record<string, unknown> = {}) => ({
  ts: T0 + i * 1000,
  seq: i,
  state: "on",
  currentA: 16.5,
  voltageV: 220,
  energyWh: 1000 + i,
  ...o,
});

const tel = (t: string, r: object, msgId?: string) => {
  const h = headers();
  if (msgId) h.set("Nats-Msg-Id", msgId);
  nc.publish(`${tp.prefix}.tel.G1.${t}`, JSON.stringify(r), msgId ? { headers: h } : undefined);
};
const telb = (readings: object[], gw = "G1") => nc.publish(`${tp.prefix}.telb.${gw}`, JSON.stringify({ readings }));

async function stored(t: string): Promise<any[]> {
  const r = await tp.api("GET", `/v1/admin/terminals/${t}/readings?limit=10000`);
  expect(r.status).toBe(200);
  return r.body.readings;
}

async function deadLetters() {
  return streamMessages<{ subject: string; reason: string; payload: string }>(tp.p.nc, tp.p.subjects.streams.dlq);
}

describe("storing readings", () => {
  it("stores single readings and batches, each once, and serves them oldest first", async () => {
    for (const i of [3, 1, 2]) tel("T1", reading(i));
    telb([4, 5, 6].map((i) => ({ terminalId: "T1", ...reading(i) })));
    const rows = await until(async () => {
      const x = await stored("T1");
      return x.length === 6 ? x : null;
    });
    expect(rows.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rows[0]).toEqual({ ts: T0 + 1000, seq: 1, state: "on", currentA: 16.5, voltageV: 220, powerW: 3630, energyWh: 1001, sessionId: null, gatewayId: "G1" });
    const page = await tp.api("GET", `/v1/admin/terminals/T1/readings?from=${T0 + 2000}&to=${T0 + 5000}&limit=2`);
    expect(page.body.readings.map((x: { seq: number }) => x.seq)).toEqual([2, 3]);
    expect(page.body.nextFrom).toBe(T0 + 3001);
  });

  it("counts duplicates once, in singles, in batches and across both", async () => {
    for (let k = 0; k < 3; k++) tel("T2", reading(1));
    tel("T2", reading(2), "T2:2");
    tel("T2", reading(2), "T2:2"); // dropped by the stream's duplicate window
    telb([{ terminalId: "T2", ...reading(1) }, { terminalId: "T2", ...reading(3) }, { terminalId: "T2", ...reading(3) }]);
    telb([{ terminalId: "T2", ...reading(3) }, { terminalId: "T2", ...reading(4) }]);
    // The writer has handled the last batch, and so everything sent before it: a duplicate stored would show now.
    await steppedUpTo(tp, tp.p.subjects.consumer("writer"), `${tp.prefix}.telb.G1`, (d) => d.readings?.[1]?.terminalId === "T2" && d.readings[1].seq === 4);
    expect((await stored("T2")).map((x) => x.seq)).toEqual([1, 2, 3, 4]);
  });
});

describe("invalid readings are dead-lettered with their reason and never stored", () => {
  it("each kind, alone and inside a batch whose valid readings are still stored", async () => {
    nc.publish(`${tp.prefix}.tel.G1.T3`, "{not json");
    tel("T3", reading(1, { currentA: -1 }));
    tel("T3", reading(2, { state: "maybe" }));
    nc.publish(`${tp.prefix}.tel.G1.NOPE`, JSON.stringify(reading(1)));
    tel("T3", reading(3, { ts: Date.now() + 10 * 60_000 }));
    tel("T3", reading(4, { energyWh: 5000 }));
    tel("T3", reading(5, { energyWh: 4000 })); // backwards, seq still rising: no boot
    tel("T3", reading(6, { seq: 0, energyWh: 10 })); // seq restarted: a boot, accepted
    telb([
      { terminalId: "T4", ...reading(1) },
      { terminalId: "T4", ...reading(2, { voltageV: "high" }) },
      { terminalId: "GHOST", ...reading(3) },
      { terminalId: "T4", ...reading(4) },
    ]);
    telb([{ terminalId: "T4", ...reading(9) }], "G9"); // T4 is registered on G1, not G9

    const letters = await until(async () => {
      const l = await deadLetters();
      return l.length >= 9 ? l : null;
    });
    const reasons = letters.map((l) => `${l.data.subject} ${l.data.reason}`);
    const expectOne = (re: RegExp) => expect(reasons.filter((r) => re.test(r)), re.source).toHaveLength(1);
    expectOne(/tel\.G1\.T3 payload is not JSON/);
    expectOne(/tel\.G1\.T3 currentA: .*/);
    expectOne(/tel\.G1\.T3 state: .*/);
    expectOne(/tel\.G1\.NOPE terminal NOPE is not registered/);
    expectOne(/tel\.G1\.T3 ts \d+ is more than 300 s ahead/);
    expectOne(/tel\.G1\.T3 energyWh 4000 is below the previous 5000 without a boot/);
    expectOne(/telb\.G1 readings\.1: voltageV: .*/);
    expectOne(/telb\.G1 terminal GHOST is not registered/);
    expectOne(/telb\.G9 terminal T4 is registered on gateway G1, not G9/);
    // The original payload travels with the letter.
    expect(letters.find((l) => /not JSON/.test(l.data.reason))!.data.payload).toBe("{not json");
    expect(JSON.parse(letters.find((l) => /GHOST/.test(l.data.reason))!.data.payload)).toMatchObject({ terminalId: "GHOST", seq: 3 });
    // Each letter is filed under the gateway of the subject it came on.
    expect(letters.every((l) => l.subject === `${tp.prefix}.dlq.${l.data.subject.split(".")[2]}`)).toBe(true);

    expect((await stored("T3")).map((x) => [x.seq, x.energyWh])).toEqual([
      [4, 5000],
      [0, 10],
    ]);
    expect((await stored("T4")).map((x) => x.seq)).toEqual([1, 4]);
    const metrics = await (await fetch(`${tp.p.url}/metrics`)).text();
    expect(metrics).toMatch(/vend_readings_dead_lettered_total\{code="unknown_terminal"\} 2/);
    expect(metrics).toMatch(/vend_readings_dead_lettered_total\{code="register_backwards"\} 1/);
    expect(metrics).toMatch(/vend_readings_dead_lettered_total\{code="future_ts"\} 1/);
  });
});

describe("crashes and outages", () => {
  it("a writer killed mid-stream and restarted loses and doubles nothing", async () => {
    const { db, subjects: s } = tp.p;
    // The platform's writer stops; a second one on its own connection takes the same durable.
    const own = await connect({ servers: NATS_URL });
    const policy = { retentionDays: 400, compressAfterDays: 2 };
    const mk = (conn: NatsConnection) =>
      startWriter({ nc: conn, db, subjects: s, log: pino({ level: "silent" }), registry: newRegistry(false), clock: Date.now, policy, ackWaitS: 2, maxBatch: 50 });
    await tp.p.writer?.stop();
    const w = await mk(own);
    const N = 3000;
    const pub = (async () => {
      for (let i = 1; i <= N; i++) {
        tel("T5", reading(i));
        // Paced, not a wait: the crash below lands while readings are still coming.
        if (i % 200 === 0) await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await until(async () => (await db.query("SELECT count(*)::int AS n FROM readings WHERE terminal_id = 'T5'")).rows[0].n > 300);
    // A crash: the connection goes away with batches unacknowledged; nothing is drained.
    await own.close();
    void w.stop().catch(() => {});
    await pub;
    const again = await connect({ servers: NATS_URL });
    const w2 = await mk(again);
    const n = await until(async () => {
      const x = (await db.query("SELECT count(*)::int AS n, count(DISTINCT ts)::int AS d FROM readings WHERE terminal_id = 'T5'")).rows[0];
      return x.n === N ? x : null;
    }, 30_000);
    expect(n).toEqual({ n: N, d: N });
    cleanup.push(async () => {
      await w2.stop();
      await again.close();
    });
  });

  it("a PostgreSQL outage of a few seconds is survived, with everything stored after it", async () => {
    const { db } = tp.p;
    const dbName = new URL(tp.config.DATABASE_URL).pathname.slice(1);
    const jsm = await jetstreamManager(tp.p.nc);
    const writer = () => jsm.consumers.info(tp.p.subjects.streams.telemetry, tp.p.subjects.consumer("writer"));
    // Nothing of the tests before is still unacknowledged: a redelivery below is the outage's.
    await until(async () => (await writer()).num_ack_pending === 0);
    {
      await using admin = await pgClient(PG_ADMIN_URL);
      await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [dbName]);
      for (let i = 1; i <= 500; i++) tel("T6", reading(i));
      // The writer has met the outage: a batch it could not store was handed back and delivered again.
      await until(async () => (await writer()).num_redelivered > 0, 30_000);
      await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);
    }
    const n = await until(async () => {
      const x = (await db.query("SELECT count(*)::int AS n FROM readings WHERE terminal_id = 'T6'")).rows[0].n;
      return x === 500 ? x : null;
    }, 30_000);
    expect(n).toBe(500);
  });
});
