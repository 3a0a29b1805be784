import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wireBounds } from "../../contracts/index.ts";
import { NATS_URL } from "../helpers/env.ts";
import { seedFleet, simGateway, steppedUpTo, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { streamMessages } from "../helpers/streams.ts";

// Issue 11, hole 4: one schema-valid huge number stalled every cutoff (the processor retried its
// batch forever) or kept a whole batch of readings from being stored (the writer's insert failed
// and the batch was handed back forever). Every number is now bounded at the edge, and what the
// database or the session machine still cannot take is dead-lettered alone.

let tp: TestPlatform;
let nc: NatsConnection;
let gw: Awaited<ReturnType<typeof simGateway>>;
let user: string;
const T0 = Date.now() - 3_600_000; // an hour old: inside retention and the clock check

beforeAll(async () => {
  tp = await testPlatform();
  await seedFleet(tp, { terminals: ["T1", "T2", "T3", "T4", "T5", "T6"] });
  nc = await connect({ servers: NATS_URL });
  // 220 V × 16.8 A ≈ 1.03 Wh per second of reading time.
  gw = await simGateway(tp, { T1: {}, T2: {} }, { tickMs: 100 });
  user = await tp.token("U1", "user");
  expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 100_000, reference: "r1" })).status).toBe(201);
  await until(async () => (await tp.api("GET", "/v1/me", undefined, user)).status === 200);
  await until(async () => (await tp.api("GET", "/v1/terminals/T2")).body?.state === "available");
});

afterAll(async () => {
  await gw?.stop();
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

type Letter = { subject: string; reason: string; payload: string };
async function deadLetters(): Promise<{ subject: string; data: Letter }[]> {
  return streamMessages<Letter>(tp.p.nc, tp.p.subjects.streams.dlq);
}
/** Waits for a dead letter of a message on `from` whose reason matches, and checks its shape. */
async function letterFor(from: string, re: RegExp, ms = 20_000): Promise<{ subject: string; data: Letter }> {
  const l = await until(async () => (await deadLetters()).find((x) => x.data.subject === `${tp.prefix}.${from}` && re.test(x.data.reason)), ms, 200);
  expect(Object.keys(l.data).sort()).toEqual(["payload", "reason", "subject"]);
  expect(l.subject).toBe(`${tp.prefix}.dlq.G1`);
  return l;
}

async function stored(t: string): Promise<{ seq: number; currentA: number; energyWh: number }[]> {
  const r = await tp.api("GET", `/v1/admin/terminals/${t}/readings?limit=10000`);
  expect(r.status).toBe(200);
  return r.body.readings;
}

async function sessionOf(id: string) {
  return (await tp.api("GET", `/v1/sessions/${id}`, undefined, user)).body;
}

/** T1's active session, started with a target far away when there is none. */
async function activeOnT1(): Promise<string> {
  const r = await tp.p.db.query<{ session_id: string }>("SELECT session_id FROM sessions WHERE terminal_id = 'T1' AND state = 'active'");
  return r.rows[0]?.session_id ?? startCharge("qr-T1", { energyWh: 500 });
}

async function startCharge(qr: string, target: object): Promise<string> {
  const r = await tp.api("POST", "/v1/charge-requests", { qr, target, payment: "prepaid" }, user);
  expect(r.status).toBe(201);
  const id = r.body.sessionId as string;
  await until(async () => (await sessionOf(id)).state === "active");
  return id;
}

describe("the writer: out-of-range readings are dead-lettered, the rest of their batch is stored", () => {
  it("energyWh 1e16 and 1e306 and currentA beyond a real's range, in a batch and alone", async () => {
    nc.publish(
      `${tp.prefix}.telb.G1`,
      JSON.stringify({
        readings: [
          { terminalId: "T3", ...reading(1) },
          { terminalId: "T3", ...reading(2, { energyWh: 1e16 }) },
          { terminalId: "T3", ...reading(3, { currentA: 1e39 }) },
          { terminalId: "T3", ...reading(4, { energyWh: 1e306 }) },
          { terminalId: "T3", ...reading(5) },
        ],
      }),
    );
    nc.publish(`${tp.prefix}.tel.G1.T3`, JSON.stringify(reading(6, { voltageV: 1e39 })));
    nc.publish(`${tp.prefix}.tel.G1.T3`, JSON.stringify(reading(7)));

    const rows = await until(async () => {
      const x = await stored("T3");
      return x.length >= 3 ? x : null;
    }, 20_000);
    expect(rows.map((x) => x.seq)).toEqual([1, 5, 7]);

    const huge = await letterFor("telb.G1", /^readings\.1: energyWh: .*<=1000000000000/);
    expect(JSON.parse(huge.data.payload)).toMatchObject({ terminalId: "T3", seq: 2, energyWh: 1e16 });
    await letterFor("telb.G1", /^readings\.2: currentA: .*<=1000\b/);
    await letterFor("telb.G1", /^readings\.3: energyWh: .*<=1000000000000/);
    const single = await letterFor("tel.G1.T3", /^voltageV: .*<=2000\b/);
    expect(JSON.parse(single.data.payload)).toMatchObject({ seq: 6, voltageV: 1e39 });
  });

  it("a value at each bound is stored; noise below a real's range is stored as 0", async () => {
    const top = { currentA: wireBounds.currentA, voltageV: wireBounds.voltageV, powerW: wireBounds.powerW, energyWh: wireBounds.energyWh };
    nc.publish(
      `${tp.prefix}.telb.G1`,
      JSON.stringify({ readings: [{ terminalId: "T4", ...reading(1, { currentA: 1e-50 }) }, { terminalId: "T4", ...reading(2, { ...top, seq: wireBounds.seq }) }] }),
    );
    const rows = await until(async () => {
      const x = await stored("T4");
      return x.length >= 2 ? x : null;
    }, 20_000);
    expect(rows[0]).toMatchObject({ seq: 1, currentA: 0 });
    expect(rows[1]).toMatchObject({ seq: wireBounds.seq, currentA: 1000, voltageV: 2000, powerW: 2e6, energyWh: 1e12 });
  });

  it("a reading the database refuses for a reason the schema does not know is dead-lettered alone", async () => {
    // A rule of the table that no wire schema knows: the writer finds the one row that breaks it.
    await tp.p.db.query("ALTER TABLE readings ADD CONSTRAINT readings_test_refuse CHECK (current_a <> 13.25)");
    try {
      nc.publish(
        `${tp.prefix}.telb.G1`,
        JSON.stringify({ readings: [1, 2, 3, 4, 5, 6, 7].map((i) => ({ terminalId: "T5", ...reading(i, i === 4 ? { currentA: 13.25 } : {}) })) }),
      );
      const rows = await until(async () => {
        const x = await stored("T5");
        return x.length >= 6 ? x : null;
      }, 20_000);
      expect(rows.map((x) => x.seq)).toEqual([1, 2, 3, 5, 6, 7]);
      const l = await letterFor("telb.G1", /^the database refused it: .*readings_test_refuse.*\(SQLSTATE 23514\)/);
      expect(JSON.parse(l.data.payload)).toMatchObject({ terminalId: "T5", seq: 4, currentA: 13.25 });
      // Dead-lettered once and acknowledged: a batch handed back would count it again (the letter
      // itself is deduplicated by its message id, the count is not), and would not be acknowledged.
      await steppedUpTo(tp, tp.p.subjects.consumer("writer"), `${tp.prefix}.telb.G1`, (d) => d.readings?.[0]?.terminalId === "T5");
      const metrics = await (await fetch(`${tp.p.url}/metrics`)).text();
      expect(metrics).toMatch(/vend_readings_dead_lettered_total\{code="db_refused"\} 1\n/);
    } finally {
      await tp.p.db.query("ALTER TABLE readings DROP CONSTRAINT readings_test_refuse");
    }
  });
});

describe("the writer under hostile numbers", () => {
  it("1000 readings with hostile values, alone and in batches: each is stored or dead-lettered with its reason", async () => {
    const hostile = fc.oneof(
      fc.double(),
      fc.constantFrom(0, 1e-50, 5e-324, 1e16, 1e39, 1e306, Number.MAX_VALUE, 2 ** 53, 2 ** 63, wireBounds.energyWh, wireBounds.currentA + 1),
      fc.string({ maxLength: 3 }),
    );
    const values = fc.sample(
      fc.record({ field: fc.constantFrom("seq", "currentA", "voltageV", "powerW", "energyWh", "sessionId", "none"), value: hostile }),
      { numRuns: 1000, seed: 11 },
    );
    const T = Date.now() - 1_800_000;
    const all = values.map(({ field, value }, i) => ({
      ts: T + i,
      seq: i,
      state: "on",
      currentA: 16.5,
      voltageV: 220,
      energyWh: 1000 + i,
      ...(field === "none" ? {} : { [field]: field === "sessionId" ? `S-${String(value)}\u0000` : value }),
    }));
    for (let i = 0; i < 500; i++) nc.publish(`${tp.prefix}.tel.G1.T6`, JSON.stringify(all[i]));
    for (let b = 500; b < 1000; b += 50)
      nc.publish(`${tp.prefix}.telb.G1`, JSON.stringify({ readings: all.slice(b, b + 50).map((r) => ({ terminalId: "T6", ...r })) }));

    const mine = (l: { data: Letter }) =>
      l.data.subject === `${tp.prefix}.tel.G1.T6` || (l.data.subject === `${tp.prefix}.telb.G1` && /"terminalId":"T6"/.test(l.data.payload));
    const counts = await until(
      async () => {
        const rows = (await tp.p.db.query("SELECT count(*)::int AS n FROM readings WHERE terminal_id = 'T6'")).rows[0].n as number;
        const letters = (await deadLetters()).filter(mine);
        return rows + letters.length === all.length ? { rows, letters } : null;
      },
      60_000,
      500,
    );
    expect(counts.rows).toBeGreaterThan(100);
    expect(counts.letters.length).toBeGreaterThan(100);
    // The register check runs both ways: singles and batches reach the writer in either order.
    for (const l of counts.letters) expect(l.data.reason).toMatch(/\w+: |is below the previous|is above the next stored|refused/);
  }, 90_000);
});

describe("the processors: a huge register on one terminal does not hold up another's cutoff", () => {
  it("energyWh 1e306 on an armed terminal; the other session still stops at its target", async () => {
    const long = await activeOnT1();
    // An armed terminal's reading whose register no exact arithmetic takes.
    nc.publish(`${tp.prefix}.tel.G1.T1`, JSON.stringify({ ts: Date.now(), seq: 1e6, state: "on", currentA: 16.8, voltageV: 220, energyWh: 1e306 }));

    const short = await startCharge("qr-T2", { energyWh: 5 });
    const done = await until(async () => {
      const s = await sessionOf(short);
      return s.state === "completed" ? s : null;
    }, 30_000);
    expect(done.stopReason).toBe("target_reached");
    // Cut within about one reading of the target (0.1 s of 3.7 kW, plus the off-ack stretch).
    expect(done.energyWh).toBeGreaterThanOrEqual(5);
    expect(done.energyWh).toBeLessThan(5.6);
    expect((await sessionOf(long)).state).toBe("active");
    await letterFor("tel.G1.T1", /^energyWh: .*<=1000000000000/);
  });
});

describe("the control service: terminal events it cannot take are dead-lettered, not retried forever", () => {
  const evt = (t: string, e: object) => nc.publish(`${tp.prefix}.evt.G1.${t}`, JSON.stringify(e));

  it("an acknowledgement with a huge register, or a NUL in its session id, never ends the session", async () => {
    const id = await activeOnT1();
    evt("T1", { type: "power_off_ack", sessionId: id, energyWh: 1e306, ts: Date.now() });
    evt("T1", { type: "power_off_ack", sessionId: `${id}\u0000`, energyWh: 10, ts: Date.now() });
    const huge = await letterFor("evt.G1.T1", /^energyWh: .*<=1000000000000/);
    expect(JSON.parse(huge.data.payload)).toMatchObject({ type: "power_off_ack", sessionId: id });
    await letterFor("evt.G1.T1", /^sessionId: must not contain NUL/);
    expect((await sessionOf(id)).state).toBe("active");
  });

  it("an event the database refuses is dead-lettered once, and the session's next events are handled", async () => {
    const id = await activeOnT1();
    // A rule the session machine does not know: ending on this register breaks it.
    await tp.p.db.query("ALTER TABLE sessions ADD CONSTRAINT sessions_test_refuse CHECK (end_mwh IS NULL OR end_mwh <> 777777777)");
    try {
      evt("T1", { type: "power_off_ack", sessionId: id, energyWh: 777777.777, ts: Date.now() });
      await letterFor("evt.G1.T1", /^cannot be handled: the database refused it: .*sessions_test_refuse.*\(SQLSTATE 23514\)/);
      expect((await sessionOf(id)).state).toBe("active");
      // The events consumer is not stuck on it: a user stop runs its round trip with the terminal.
      expect((await tp.api("POST", `/v1/sessions/${id}/stop`, undefined, user)).status).toBe(202);
      const s = await until(async () => {
        const x = await sessionOf(id);
        return x.state === "completed" ? x : null;
      }, 20_000);
      expect(s.stopReason).toBe("user_stop");
      // Dead-lettered once: a batch handed back would have counted it again.
      const metrics = await (await fetch(`${tp.p.url}/metrics`)).text();
      expect(metrics).toMatch(/vend_dead_letters_total\{source="events",code="unhandled"\} 1\n/);
    } finally {
      await tp.p.db.query("ALTER TABLE sessions DROP CONSTRAINT sessions_test_refuse");
    }
  });
});
