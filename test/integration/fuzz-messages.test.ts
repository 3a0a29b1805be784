import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FUZZ, NATS_URL } from "../helpers/env.ts";
import { buildContext, classOf, fleet, legitSingle, messageArb, strayEvent, type FuzzMessage } from "../helpers/fuzz-messages.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { mergeResult } from "../helpers/results.ts";
import { streamMessages } from "../helpers/streams.ts";

/**
 * The message half of issue 11's fuzz run: FUZZ_MESSAGES (default 10 000) malformed telemetry
 * singles, batches and terminal events published to JetStream while a real session charges on the
 * same gateway and valid readings are interleaved. Every bad message (or bad part of a batch) must
 * be dead-lettered once with its reason; the valid readings stored; the session cut off at its
 * target and billed on its own registers; and every consumer still working afterwards.
 */

const TARGET_WH = 20;
/** How far past its target the session may run: about two seconds of its 3.7 kW at a 200 ms tick. */
const SLACK_WH = 2;

let tp: TestPlatform;
let nc: NatsConnection;
let gw: Awaited<ReturnType<typeof simGateway>>;
let sessionId: string;
let sent: FuzzMessage[] = [];
let letters: { subject: string; reason: string; class: string }[] = [];
let publishSeconds = 0;
let lettersSeconds = 0;
let session: any;
let seed = 0;

beforeAll(async () => {
  tp = await testPlatform({ STREAM_MAX_BYTES: String(256 * 2 ** 20), LOG_LEVEL: "fatal" });
  await seedFleet(tp, { terminals: [fleet.session, fleet.legitSingles, fleet.legitInBatches, fleet.backwards, ...fleet.hostile] });
  expect((await tp.api("PUT", `/v1/admin/gateways/${fleet.otherGateway}`, { regionId: "R1" })).status).toBe(200);
  expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 100_000, reference: "fuzz" })).status).toBe(201);
  nc = await connect({ servers: NATS_URL });
  // The session's terminal, on its real gateway: 220 V × 16.8 A ≈ 1 Wh per second.
  gw = await simGateway(tp, { [fleet.session]: {} }, { tickMs: 200 });
  const user = await tp.token("U1", "user");
  await until(async () => (await tp.api("GET", `/v1/terminals/${fleet.session}`)).body?.state === "available");
  const created = await tp.api("POST", "/v1/charge-requests", { qr: `qr-${fleet.session}`, target: { energyWh: TARGET_WH }, payment: "prepaid" }, user);
  expect(created.status).toBe(201);
  sessionId = created.body.sessionId;
  await until(async () => (await tp.api("GET", `/v1/sessions/${sessionId}`)).body?.state === "active");

  // The messages: at least FUZZ_MESSAGES malformed ones, a valid single reading after every eighth,
  // and now and then a valid event of a session nobody has.
  seed = FUZZ.seed ?? Math.floor(Math.random() * 2 ** 31);
  const templates = fc.sample(messageArb(), { numRuns: FUZZ.messages, seed });
  const ctx = buildContext(Date.now(), gw.terminals.get(fleet.session)!.lastReading?.energyWh ?? 100_000);
  sent = [];
  templates.forEach((make, i) => {
    sent.push(make(ctx));
    if (i % 8 === 0) sent.push(legitSingle(ctx));
    if (i % 50 === 0) sent.push(strayEvent(ctx, i));
  });

  // Published in order, a window of them in flight at a time, while the session charges.
  const js = jetstream(nc);
  const started = performance.now();
  const window = 256;
  for (let i = 0; i < sent.length; i += window)
    await Promise.all(sent.slice(i, i + window).map((m) => js.publish(`${tp.prefix}.${m.subject}`, m.data)));
  publishSeconds = (performance.now() - started) / 1000;

  // Every dead letter (or as many as come within 90 s), then the session's end.
  const expected = sent.reduce((n, m) => n + m.letters.length, 0);
  const jsm = await jetstreamManager(nc);
  const dlqCount = async () => (await jsm.streams.info(tp.p.subjects.streams.dlq)).state.messages;
  let last = -1;
  let stableSince = performance.now();
  let reached = 0;
  for (const end = performance.now() + 90_000; performance.now() < end; ) {
    const n = await dlqCount();
    if (n !== last) {
      last = n;
      stableSince = performance.now();
    }
    if (n >= expected && !reached) reached = performance.now();
    // All in, and nothing more for two seconds (a letter too many would show).
    if (n >= expected && performance.now() - stableSince > 2000) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  lettersSeconds = ((reached || performance.now()) - started) / 1000;
  session = await until(async () => {
    const r = await tp.api("GET", `/v1/sessions/${sessionId}`);
    return r.body?.state === "completed" || r.body?.state === "failed" ? r.body : null;
  }, 60_000).catch(async () => (await tp.api("GET", `/v1/sessions/${sessionId}`)).body);
  letters = (await streamMessages<{ subject: string; reason: string; payload: string }>(nc, tp.p.subjects.streams.dlq, 200_000)).map((l) => ({
    subject: l.data.subject,
    reason: l.data.reason,
    class: classOf(l.data.reason),
  }));
}, 300_000);

afterAll(async () => {
  await gw?.stop();
  await nc?.close();
  await tp?.[Symbol.asyncDispose]();
});

const key = (subject: string, cls: string) => `${subject} ${cls}`;
function tally(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return Object.fromEntries(Object.entries(out).sort());
}

describe("message fuzz", () => {
  it(`sends at least ${FUZZ.messages} malformed telemetry and event messages`, async () => {
    const malformed = sent.filter((m) => m.malformed).length;
    const expectedByClass = tally(sent.flatMap((m) => m.letters.map((l) => l.class)));
    const figures = {
      seed,
      messagesSent: sent.length,
      malformed,
      legitReadings: sent.reduce((n, m) => n + m.legit.length, 0),
      byKind: tally(sent.map((m) => m.kind)),
      expectedLetters: sent.reduce((n, m) => n + m.letters.length, 0),
      expectedByClass,
      deadLettered: letters.length,
      deadLetteredByClass: tally(letters.map((l) => l.class)),
      publishSeconds: Math.round(publishSeconds * 10) / 10,
      /** From the first publish until the last expected dead letter was stored. */
      secondsUntilLettered: Math.round(lettersSeconds * 10) / 10,
      session: session && { state: session.state, stopReason: session.stopReason, energyWh: session.energyWh, targetWh: TARGET_WH },
    };
    if (FUZZ.results) await mergeResult(FUZZ.results, "fuzz", "messages", figures);
    console.log(`message fuzz: ${JSON.stringify(figures)}`);
    expect(malformed).toBeGreaterThanOrEqual(FUZZ.messages);
  });

  it("dead-letters every bad message, and every bad reading of a batch, once with its reason", () => {
    // Matched by the subject each letter names and the class of its reason, as multisets: a letter
    // missing, one too many (a message counted twice) or one for the wrong reason all show.
    const want = tally(sent.flatMap((m) => m.letters.map((l) => key(`${tp.prefix}.${l.subject}`, l.class))));
    const got = tally(letters.map((l) => key(l.subject, l.class)));
    const diff: Record<string, { expected: number; got: number }> = {};
    for (const k of new Set([...Object.keys(want), ...Object.keys(got)])) if (want[k] !== got[k]) diff[k] = { expected: want[k] ?? 0, got: got[k] ?? 0 };
    expect(letters.every((l) => l.reason.length > 0)).toBe(true);
    expect(diff).toEqual({});
  });

  it("stores every valid reading sent among them, each once", async () => {
    const want = new Map<string, Set<number>>();
    for (const m of sent) for (const l of m.legit) (want.get(l.terminalId) ?? want.set(l.terminalId, new Set()).get(l.terminalId)!).add(l.ts);
    const stored = await until(
      async () => {
        const r = await tp.p.db.query<{ terminal_id: string; n: number }>(
          "SELECT terminal_id, count(*)::int AS n FROM readings WHERE terminal_id = ANY($1::text[]) GROUP BY terminal_id",
          [[...want.keys()]],
        );
        const got = Object.fromEntries(r.rows.map((x) => [x.terminal_id, x.n]));
        return [...want].every(([t, s]) => got[t] === s.size) ? got : null;
      },
      30_000,
    ).catch(async () => {
      const r = await tp.p.db.query<{ terminal_id: string; n: number }>("SELECT terminal_id, count(*)::int AS n FROM readings WHERE terminal_id = ANY($1::text[]) GROUP BY terminal_id", [[...want.keys()]]);
      return Object.fromEntries(r.rows.map((x) => [x.terminal_id, x.n]));
    });
    expect(stored).toEqual(Object.fromEntries([...want].map(([t, s]) => [t, s.size])));
    // Nothing of the hostile terminals' readings was stored.
    const hostile = await tp.p.db.query<{ n: number }>("SELECT count(*)::int AS n FROM readings WHERE terminal_id = ANY($1::text[])", [[...fleet.hostile]]);
    expect(hostile.rows[0]!.n).toBe(0);
  });

  it("cuts the session off at its target and bills it on its own registers", () => {
    expect(session).toMatchObject({ state: "completed", stopReason: "target_reached" });
    expect(session.energyWh).toBeGreaterThanOrEqual(TARGET_WH);
    expect(session.energyWh).toBeLessThan(TARGET_WH + SLACK_WH);
    const t = gw.terminals.get(fleet.session)!;
    const on = t.events.find((e) => e.type === "power_on_ack" && e.sessionId === sessionId) as { energyWh: number } | undefined;
    // The end register: the answer to the cloud's power_off, or the terminal's own stop at its limit
    // (the target), whichever the terminal sent (it stops itself at the target as the cloud cuts).
    const off = t.events.find((e) => (e.type === "power_off_ack" || e.type === "power_off") && e.sessionId === sessionId) as
      | { energyWh: number }
      | undefined;
    expect(on && off).toBeTruthy();
    expect(session.energyWh).toBeCloseTo(off!.energyWh - on!.energyWh, 3);
  });

  it("keeps every consumer working: a valid reading is stored and a bad one dead-lettered afterwards", async () => {
    expect((await fetch(`${tp.p.url}/healthz`)).status).toBe(200);
    const js = jetstream(nc);
    const ts = Date.now() - 1000;
    await js.publish(`${tp.prefix}.tel.G1.${fleet.legitSingles}`, JSON.stringify({ ts, seq: 1_000_000, state: "off", currentA: 0, voltageV: 220, energyWh: 1e9 }));
    await js.publish(`${tp.prefix}.evt.G1.F1`, "after the fuzz");
    await until(async () => (await tp.p.db.query("SELECT 1 FROM readings WHERE terminal_id = $1::text AND ts = vv_ms_to_ts($2::bigint)", [fleet.legitSingles, ts])).rowCount === 1, 30_000);
    await until(async () => {
      const all = await streamMessages<{ subject: string; payload: string }>(nc, tp.p.subjects.streams.dlq, 200_000);
      return all.some((l) => l.data.payload === "after the fuzz");
    }, 30_000);
  });
});
