import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerSums } from "../../control/index.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform, terminalsSeen } from "../helpers/platform.ts";

// Short deadlines so the unhappy paths finish in seconds: commands give up after 2 s, a silent
// session ends after 2 s.
let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;

const terminals = ["REFUSE", "SILENT", "SLOW", "STOP", "GONE", "NOON", "CRASH", "DUP", "OFF"];

beforeAll(async () => {
  tp = await testPlatform({ CMD_TIMEOUT_MS: "2000", CMD_RETRY_MS: "300", SESSION_SILENCE_S: "2", CONTROL_TICK_MS: "100" });
  await seedFleet(tp, { terminals });
  gw = await simGateway(
    tp,
    {
      REFUSE: { handshake: "refuse" },
      SILENT: { handshake: "silent" },
      SLOW: { ackDelayMs: 700, limits: false }, // the cloud's power_off, repeated, not the terminal's own stop
      STOP: {},
      GONE: {},
      NOON: { powerOnAck: false },
      CRASH: {},
      DUP: {},
      OFF: { online: false },
    },
    { tickMs: 100 },
  );
  await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 10_000, reference: "seed-U1" });
  await terminalsSeen(tp, gw, terminals.filter((t) => t !== "OFF")); // OFF is offline on purpose
});

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

const userToken = () => tp.token("U1", "user");

async function charge(qr: string, target: object, payment = "prepaid", token?: string) {
  return tp.api("POST", "/v1/charge-requests", { qr, target, payment }, token ?? (await userToken()));
}

async function ended(id: string, token?: string) {
  const t = token ?? (await userToken());
  return until(async () => {
    const r = await tp.api("GET", `/v1/sessions/${id}`, undefined, t);
    return r.body.state === "completed" || r.body.state === "failed" ? r.body : null;
  }, 20_000);
}

async function expectLedgerConsistent(userId: string) {
  const { rows } = await tp.p.db.query("SELECT balance_cents, held_cents, debt_cents FROM users WHERE user_id = $1", [userId]);
  const sums = await ledgerSums(tp.p.db, userId);
  expect(sums).toEqual({ balance: rows[0].balance_cents, held: rows[0].held_cents, debt: rows[0].debt_cents });
}

describe("handshake", () => {
  it("a refused handshake ends the session failed, sends no power_on and releases the hold", async () => {
    const before = (await tp.api("GET", "/v1/me", undefined, await userToken())).body;
    const r = await charge("qr-REFUSE", { energyWh: 1000 });
    expect(r.status).toBe(201);
    expect(r.body.heldCents).toBe(100);
    const s = await ended(r.body.sessionId);
    expect(s).toMatchObject({ state: "failed", stopReason: "handshake_failed", feeCents: 0, startedAt: null });
    const term = gw.terminals.get("REFUSE")!;
    expect(term.commands.map((c) => c.type)).not.toContain("power_on");
    expect(term.relay).toBe("off");
    const after = (await tp.api("GET", "/v1/me", undefined, await userToken())).body;
    expect(after).toEqual(before);
    await expectLedgerConsistent("U1");
  });

  it("a silent terminal gets the same handshake repeated, then the session times out and is refunded", async () => {
    const r = await charge("qr-SILENT", { energyWh: 1000 });
    const s = await ended(r.body.sessionId);
    expect(s).toMatchObject({ state: "failed", stopReason: "handshake_timeout", feeCents: 0 });
    const hs = gw.terminals.get("SILENT")!.commands.filter((c) => c.type === "handshake");
    // Repeated every 300 ms for 2 s: several sends, all one command.
    expect(hs.length).toBeGreaterThanOrEqual(3);
    expect(new Set(hs.map((c) => c.cmdId)).size).toBe(1);
    const me = (await tp.api("GET", "/v1/me", undefined, await userToken())).body;
    expect(me.heldCents).toBe(0);
    await expectLedgerConsistent("U1");
  });

  it("answers that arrive late and twice are handled once", async () => {
    // Acks come 700 ms late, so every command is repeated before its answer; each repeat is answered too.
    const r = await charge("qr-SLOW", { energyWh: 1 });
    const s = await ended(r.body.sessionId);
    expect(s).toMatchObject({ state: "completed", stopReason: "target_reached" });
    const cmds = gw.terminals.get("SLOW")!.commands;
    const ids = (type: string) => new Set(cmds.filter((c) => c.type === type).map((c) => c.cmdId));
    expect(cmds.filter((c) => c.type === "handshake").length).toBeGreaterThan(1);
    // One power_on and one power_off command, however many duplicate answers arrived.
    expect(ids("power_on").size).toBe(1);
    expect(ids("power_off").size).toBe(1);
    const captures = await tp.p.db.query("SELECT count(*)::int AS n FROM wallet_ledger WHERE session_id = $1 AND kind = 'capture'", [s.sessionId]);
    expect(captures.rows[0].n).toBe(1);
    // Billed time ends where the terminal stamped its stop: the readings that came while the late
    // answer was on its way (relay open) are no session's time.
    const row = await tp.p.db.query("SELECT duration_ms::float8 AS d FROM sessions WHERE session_id = $1", [s.sessionId]);
    expect(row.rows[0].d).toBe(s.endedAt - s.startedAt);
    await expectLedgerConsistent("U1");
  });

  it("a terminal that never confirms power on is switched off, and the session fails refunded", async () => {
    const r = await charge("qr-NOON", { energyWh: 1000 });
    const s = await ended(r.body.sessionId);
    expect(s).toMatchObject({ state: "failed", stopReason: "terminal_offline", feeCents: 0 });
    await until(async () => gw.terminals.get("NOON")!.commands.some((c) => c.type === "power_off"));
    const me = (await tp.api("GET", "/v1/me", undefined, await userToken())).body;
    expect(me.heldCents).toBe(0);
  });
});

describe("refusals before any command", () => {
  it("a terminal with no telemetry answers 409 terminal_offline", async () => {
    const r = await charge("qr-OFF", { energyWh: 10 });
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe("terminal_offline");
    expect(gw.terminals.get("OFF")!.commands).toHaveLength(0);
  });

  it("too little balance answers 402 and holds nothing", async () => {
    const poor = await tp.token("POOR", "user");
    await tp.api("POST", "/v1/admin/users/POOR/topups", { amountCents: 5, reference: "p1" });
    const r = await charge("qr-STOP", { energyWh: 10_000 }, "prepaid", poor); // holds 1000 c
    expect(r.status).toBe(402);
    expect(r.body.error.code).toBe("insufficient_balance");
    const me = (await tp.api("GET", "/v1/me", undefined, poor)).body;
    expect(me).toMatchObject({ balanceCents: 5, heldCents: 0 });
    const n = await tp.p.db.query("SELECT count(*)::int AS n FROM sessions WHERE user_id = 'POOR'");
    expect(n.rows[0].n).toBe(0);
  });

  it("postpaid with no credit answers 402 credit_exhausted", async () => {
    const nocredit = await tp.token("NOCREDIT", "user");
    const r = await charge("qr-STOP", { energyWh: 10 }, "postpaid", nocredit);
    expect(r.status).toBe(402);
    expect(r.body.error.code).toBe("credit_exhausted");
  });

  it("an unknown QR answers 404", async () => {
    const r = await charge("qr-nope", { energyWh: 10 });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe("terminal_not_found");
  });
});

describe("stopping", () => {
  it("a user stop switches power off and bills exactly what was delivered", async () => {
    const r = await charge("qr-STOP", { durationS: 600 });
    const id = r.body.sessionId;
    const t = await userToken();
    // Charging: some energy delivered and metered.
    await until(async () => (await tp.api("GET", `/v1/sessions/${id}`, undefined, t)).body.energyWh > 0);
    const other = await tp.token("U9", "user");
    expect((await tp.api("POST", `/v1/sessions/${id}/stop`, undefined, other)).status).toBe(403);
    expect((await tp.api("POST", `/v1/sessions/${id}/stop`, undefined, t)).status).toBe(202);
    const s = await ended(id);
    expect(s).toMatchObject({ state: "completed", stopReason: "user_stop" });
    const term = gw.terminals.get("STOP")!;
    const on = term.events.find((e) => e.type === "power_on_ack") as { energyWh: number };
    const off = term.events.find((e) => e.type === "power_off_ack") as { energyWh: number };
    expect(s.energyWh).toBeCloseTo(off.energyWh - on.energyWh, 3);
    // 100 c/kWh: fee = mWh × 100 / 1e6, rounded half up once (integer arithmetic).
    const mwh = BigInt(Math.round(s.energyWh * 1000));
    expect(s.feeCents).toBe(Number((mwh * 100n + 500_000n) / 1_000_000n));
    expect((await tp.api("POST", `/v1/sessions/${id}/stop`, undefined, t)).status).toBe(409);
    await expectLedgerConsistent("U1");
  });

  it("a terminal that goes silent mid-session is cut terminal_offline and billed on the last register seen", async () => {
    const r = await charge("qr-GONE", { durationS: 600 });
    const id = r.body.sessionId;
    const t = await userToken();
    // Charging: some energy delivered and metered.
    await until(async () => (await tp.api("GET", `/v1/sessions/${id}`, undefined, t)).body.energyWh > 0);
    const term = gw.terminals.get("GONE")!;
    term.set({ online: false });
    const last = term.lastReading!;
    const on = term.events.find((e) => e.type === "power_on_ack") as { energyWh: number };
    const s = await ended(id);
    expect(s).toMatchObject({ state: "completed", stopReason: "terminal_offline" });
    expect(s.energyWh).toBeCloseTo(last.energyWh - on.energyWh, 3);
    expect(s.energyWh).toBeGreaterThan(0);
    await expectLedgerConsistent("U1");
  });
});

describe("the stream processors", () => {
  it("restarted in the middle of a session, still cuts off at the target", async () => {
    const r = await charge("qr-CRASH", { energyWh: 2.5 });
    const id = r.body.sessionId;
    const t = await userToken();
    await until(async () => (await tp.api("GET", `/v1/sessions/${id}`, undefined, t)).body.energyWh > 0.5);
    await tp.p.processors!.stop();
    // Readings pile up in the stream while no processor runs; the new one restores the meter
    // checkpoint and the arm, catches up, and cuts (2.5 Wh takes ~2.4 s at 3.7 kW, so it restarts before).
    const jsm = await jetstreamManager(tp.p.nc);
    await until(async () => (await jsm.consumers.info(tp.p.subjects.streams.telemetry, tp.p.subjects.consumer("processors"))).num_pending >= 3);
    tp.p.processors = await tp.p.startProcessors();
    const s = await ended(id);
    expect(s).toMatchObject({ state: "completed", stopReason: "target_reached" });
    expect(s.energyWh).toBeGreaterThanOrEqual(2.5);
    expect(s.energyWh).toBeLessThan(3.0);
  });
});
