import { jetstream } from "@nats-io/jetstream";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Arm, TerminalEvent } from "../../contracts/index.ts";
import { armTerminal, disarmTerminal } from "../../control/internal.ts";
import { seedFleet, testPlatform, type TestPlatform } from "../helpers/platform.ts";

// Two consecutive sessions on one terminal, X then Y, driven through the real control service
// (PostgreSQL and NATS) by events that come late, twice, out of order and side by side, as a
// redelivery after a crash or a slow gateway brings them. After every step: a session whose power
// is on (active or stopping) is armed in the arms bucket under its own id, an ended one is not,
// and while Y holds the terminal (power_on sent, not ended) no command of X is pending (its repeats
// would switch Y off).
// The clock is the test's: a tick moves it on and runs the command round (repeats, deadlines, and
// the arms check), so deadlines fall inside the interleavings too.

let tp: TestPlatform;
let now = 1_795_478_400_000;
const clock = () => now;
const USER = "U1";

beforeAll(async () => {
  // The round runs only when a step asks for it; the processors stay off (a silent terminal would
  // otherwise be cut by the clock of the test).
  tp = await testPlatform(
    { CONTROL_TICK_MS: "3600000", ARMS_CHECK_MS: "3600000", CMD_RETRY_MS: "1000", CMD_TIMEOUT_MS: "10000" },
    { clock, parts: { cutoff: false, faults: false, writer: false, backup: false } },
  );
  await seedFleet(tp, { terminals: [] });
  const r = await tp.api("POST", `/v1/admin/users/${USER}/topups`, { amountCents: 100_000_000, reference: "seed" });
  expect(r.status).toBe(201);
});
afterAll(async () => tp?.[Symbol.asyncDispose]());

type Slot = 0 | 1;
type Step =
  | { kind: "request"; s: Slot }
  | { kind: "handshake"; s: Slot; match: boolean }
  | { kind: "power_on_ack"; s: Slot }
  | { kind: "power_off_ack"; s: Slot }
  | { kind: "cutoff"; s: Slot }
  | { kind: "stop"; s: Slot }
  | { kind: "tick" }
  | { kind: "together"; a: Step; b: Step };

const slot = fc.constantFrom<Slot>(0, 1);
const single: fc.Arbitrary<Step> = fc.oneof(
  slot.map((s) => ({ kind: "request", s }) as const),
  fc.record({ s: slot, match: fc.integer({ min: 0, max: 4 }).map((n) => n > 0) }).map((r) => ({ kind: "handshake", ...r }) as const),
  slot.map((s) => ({ kind: "power_on_ack", s }) as const),
  slot.map((s) => ({ kind: "power_off_ack", s }) as const),
  slot.map((s) => ({ kind: "cutoff", s }) as const),
  slot.map((s) => ({ kind: "stop", s }) as const),
  fc.constant({ kind: "tick" } as const),
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: single, weight: 5 },
  { arbitrary: fc.record({ a: single, b: single }).map((r) => ({ kind: "together", ...r }) as const), weight: 1 },
);

/** X's whole life, then Y's: the order a well-behaved terminal would follow. */
const happy = (s: Slot): Step[] => [
  { kind: "request", s },
  { kind: "handshake", s, match: true },
  { kind: "power_on_ack", s },
  { kind: "stop", s },
  { kind: "power_off_ack", s },
];

/** The happy script with steps repeated, moved a little, and random extra steps put anywhere. */
const scenario = fc
  .record({
    repeat: fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }),
    moves: fc.array(fc.tuple(fc.nat(), fc.integer({ min: -3, max: 3 })), { maxLength: 4 }),
    extras: fc.array(fc.tuple(fc.nat(), step), { maxLength: 12 }),
    // X's events once Y has started: what a redelivery after a crash brings.
    late: fc.array(fc.tuple(fc.nat(), single), { maxLength: 4 }),
  })
  .map(({ repeat, moves, extras, late }) => {
    const steps: Step[] = [];
    [...happy(0), ...happy(1)].forEach((st, i) => {
      steps.push(st);
      if (repeat[i]) steps.push(st);
    });
    for (const [from, by] of moves) {
      const i = from % steps.length;
      const [st] = steps.splice(i, 1);
      steps.splice(Math.max(0, Math.min(steps.length, i + by)), 0, st!);
    }
    for (const [at, st] of extras) steps.splice(at % (steps.length + 1), 0, st);
    const yStarts = steps.findIndex((st) => st.kind === "power_on_ack" && st.s === 1);
    for (const [at, st] of late) steps.splice(yStarts + 1 + (at % (steps.length - yStarts)), 0, "s" in st ? { ...st, s: 0 } : st);
    return steps;
  });

let terminalNo = 0;

interface Run {
  terminalId: string;
  sessions: [string | null, string | null];
  /** Register of the terminal, moved on by every event. */
  wh: number;
}

async function newTerminal(): Promise<Run> {
  const terminalId = `T${++terminalNo}`;
  const r = await tp.api("PUT", `/v1/admin/terminals/${terminalId}`, { qr: `qr-${terminalId}`, gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" });
  expect(r.status).toBeLessThan(300);
  return { terminalId, sessions: [null, null], wh: 1000 };
}

async function event(run: Run, ev: TerminalEvent): Promise<void> {
  await tp.p.control!.sessions.onEvent("G1", run.terminalId, ev);
}

async function perform(run: Run, st: Step): Promise<void> {
  const sv = tp.p.control!.sessions;
  if (st.kind === "tick") {
    now += 4_000;
    await tp.p.control!.tick();
    return;
  }
  if (st.kind === "together") {
    await Promise.all([perform(run, st.a), perform(run, st.b)]);
    return;
  }
  if (st.kind === "request") {
    // Y comes after X; a second request for a slot is a user tapping again (a new session is not
    // wanted: the slot keeps its first).
    if (run.sessions[st.s] !== null || (st.s === 1 && run.sessions[0] === null)) return;
    // The terminal is online to the control service: a reading in the telemetry stream (its
    // arrival, real time, is after this clock's now).
    await jetstream(tp.p.nc).publish(
      tp.p.subjects.tel("G1", run.terminalId),
      JSON.stringify({ ts: now, seq: 1, state: "off", currentA: 0, voltageV: 220, energyWh: run.wh }),
    );
    try {
      const s = await sv.requestCharge(USER, { qr: `qr-${run.terminalId}`, target: { energyWh: 1000 }, payment: "prepaid" });
      run.sessions[st.s] = s.sessionId;
    } catch (e) {
      if ((e as { status?: number }).status !== 409) throw e; // X still holds the terminal
    }
    return;
  }
  const sessionId = run.sessions[st.s];
  if (sessionId === null) return;
  run.wh += 0.5;
  now += 100;
  switch (st.kind) {
    case "handshake":
      return event(run, { type: "handshake_result", sessionId, terminalCode: run.terminalId, match: st.match, ts: now });
    case "power_on_ack":
      return event(run, { type: "power_on_ack", sessionId, energyWh: run.wh, ts: now });
    case "power_off_ack":
      return event(run, { type: "power_off_ack", sessionId, energyWh: run.wh, ts: now });
    case "cutoff":
      return sv.onCutoff({ sessionId, terminalId: run.terminalId, reason: "target_reached", ts: now, decidedAt: now });
    case "stop":
      try {
        await sv.stop({ sub: USER, role: "user" }, sessionId);
      } catch (e) {
        if ((e as { status?: number }).status !== 409) throw e; // ended already
      }
  }
}

async function armedSession(terminalId: string): Promise<string | null> {
  const e = await tp.p.buckets.arms.get(terminalId);
  if (!e || e.operation !== "PUT" || e.length === 0) return null;
  return (e.json() as { sessionId: string }).sessionId;
}

/** The invariants, read from the database and the bucket as they are now. */
async function check(run: Run, history: Step[]): Promise<void> {
  const { rows } = await tp.p.db.query<{ session_id: string; state: string; handshake_ok: boolean }>(
    "SELECT session_id, state, handshake_ok FROM sessions WHERE terminal_id = $1::text",
    [run.terminalId],
  );
  const armed = await armedSession(run.terminalId);
  const where = () => `after ${JSON.stringify(history)}; sessions ${JSON.stringify(rows)}; armed ${armed}`;
  for (const r of rows) {
    if (r.state === "active" || r.state === "stopping") expect(armed, `${r.session_id} is ${r.state} but not armed, ${where()}`).toBe(r.session_id);
    if (r.state === "completed" || r.state === "failed") expect(armed, `${r.session_id} has ended but is armed, ${where()}`).not.toBe(r.session_id);
  }
  const [x, y] = run.sessions;
  // Y holds the terminal from its power_on until it ends; after that an X event may switch the terminal off again.
  const yRow = rows.find((r) => r.session_id === y);
  const yHolds = yRow !== undefined && yRow.handshake_ok && ["authorizing", "active", "stopping"].includes(yRow.state);
  if (x && yHolds) {
    const { rows: pending } = await tp.p.db.query("SELECT type FROM commands WHERE session_id = $1::text AND status = 'pending'", [x]);
    expect(pending, `X's commands still go out after Y asked for power, ${where()}`).toEqual([]);
  }
}

describe("arms of two consecutive sessions on one terminal", () => {
  it("an active session is always armed under its own id, an ended one never, whatever the order of events", { timeout: 180_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (steps) => {
        const run = await newTerminal();
        const done: Step[] = [];
        for (const st of steps) {
          await perform(run, st);
          done.push(st);
          await check(run, done);
        }
      }),
      { numRuns: 50, endOnFailure: true },
    );
  });
});

const armOfTest: Arm = {
  sessionId: "",
  terminalId: "TR",
  gatewayId: "G1",
  startTs: 0,
  startWh: 0,
  target: { energyWh: 1000 },
  capCents: 100,
  capLookahead: false,
  tariff: { version: 1, timezone: "Asia/Shanghai", periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100, timeCentsPerHour: 0 }] },
};

describe("compare-and-set", () => {
  it("a disarm of X racing an arm of Y over X's entry always ends with Y armed", async () => {
    const kv = tp.p.buckets.arms;
    const arm = (sessionId: string) => ({ ...armOfTest, sessionId });
    for (let i = 0; i < 20; i++) {
      const seen = await kv.put("TR", JSON.stringify(arm(`X${i}`)));
      const [, armed] = await Promise.all([disarmTerminal(kv, "TR", `X${i}`), armTerminal(kv, arm(`Y${i}`))]);
      expect(armed).toBe(true);
      expect((await kv.get("TR"))?.json()).toMatchObject({ sessionId: `Y${i}` });
      // A disarm of an ended session never takes the next one's arm, nor one narrowed to an older revision.
      expect(await disarmTerminal(kv, "TR", `X${i}`)).toBe(false);
      expect(await disarmTerminal(kv, "TR", `Y${i}`, seen)).toBe(false);
      expect((await kv.get("TR"))?.json()).toMatchObject({ sessionId: `Y${i}` });
    }
    await kv.delete("TR");
  });
});
