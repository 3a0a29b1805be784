import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { subjects, type Command, type Reading, type TerminalEvent } from "../../contracts/index.ts";
import { createGateway, type Gateway, type GatewayOptions } from "../../cli/index.ts";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const prefix = `simtest_${randomBytes(4).toString("hex")}`;
const s = subjects(prefix);

// The simulator and the "cloud" side use separate connections, as in production.
let simNc: NatsConnection;
let cloud: NatsConnection;
const gateways: Gateway[] = [];
let n = 0;

beforeAll(async () => {
  simNc = await connect({ servers: NATS_URL });
  cloud = await connect({ servers: NATS_URL });
});

afterAll(async () => {
  for (const g of gateways) await g.stop();
  const jsm = await jetstreamManager(cloud);
  await jsm.streams.delete(s.streams.events).catch(() => undefined);
  await simNc?.close();
  await cloud?.close();
});

/** A fresh gateway per test, with time driven by hand, and core subscriptions on its output. */
async function setup(opts: Partial<GatewayOptions> = {}) {
  let now = 1_764_000_000_000;
  const gatewayId = `G${++n}`;
  const gw = createGateway({ nc: simNc, prefix, gatewayId, clock: () => now, ...opts });
  gateways.push(gw);
  const events: { terminalId: string; event: TerminalEvent }[] = [];
  const tel: Msg[] = [];
  const telb: Msg[] = [];
  const last = (m: Msg) => m.subject.slice(m.subject.lastIndexOf(".") + 1);
  cloud.subscribe(s.evt(gatewayId, "*"), { callback: (_e, m) => void events.push({ terminalId: last(m), event: m.json() }) });
  cloud.subscribe(s.tel(gatewayId, "*"), { callback: (_e, m) => void tel.push(m) });
  cloud.subscribe(s.telBatch(gatewayId), { callback: (_e, m) => void telb.push(m) });
  await cloud.flush();
  await gw.flush();
  return {
    gw,
    gatewayId,
    events,
    tel,
    telb,
    advance: (ms: number) => (now += ms),
    now: () => now,
    send: (terminalId: string, cmd: Command | object) => cloud.publish(s.cmd(gatewayId, terminalId), JSON.stringify(cmd)),
    /** Waits until everything sent and published so far has gone round the server. */
    settle: async () => {
      await cloud.flush();
      await gw.flush();
      await cloud.flush();
    },
  };
}

async function until<T>(f: () => T | undefined, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const hs = (cmdId: string, terminalCode: string): Command => ({ type: "handshake", cmdId, sessionId: "S-1", terminalCode });

describe("simulated terminals over NATS", () => {
  it("answers a handshake with match true for its own code and false for another", async () => {
    const t = await setup();
    t.gw.addTerminal("T1", { code: "CODE-1" });
    t.send("T1", hs("C-1", "CODE-1"));
    t.send("T1", hs("C-2", "T1"));
    await until(() => (t.events.length >= 2 ? true : undefined));
    expect(t.events.map((e) => e.event)).toEqual([
      { type: "handshake_result", sessionId: "S-1", terminalCode: "CODE-1", match: true, ts: t.now() },
      { type: "handshake_result", sessionId: "S-1", terminalCode: "CODE-1", match: false, ts: t.now() },
    ]);
    expect(t.events.every((e) => e.terminalId === "T1")).toBe(true);
  });

  it("refuses, or stays silent, as its behaviour says", async () => {
    const t = await setup();
    t.gw.addTerminal("R", { handshake: "refuse" });
    const silent = t.gw.addTerminal("Q", { handshake: "silent" });
    t.gw.addTerminal("OK");
    t.send("R", hs("C-1", "R"));
    t.send("Q", hs("C-2", "Q"));
    // Commands and answers keep their order, so once OK has answered, Q would have too.
    t.send("OK", hs("C-3", "OK"));
    await until(() => t.events.find((e) => e.terminalId === "OK"));
    await t.settle();
    expect(t.events.map((e) => [e.terminalId, (e.event as { match: boolean }).match])).toEqual([
      ["R", false],
      ["OK", true],
    ]);
    expect(silent.commands).toHaveLength(1);
    // Silence can end: a repeat of the unanswered handshake is then answered.
    silent.set({ handshake: "match" });
    t.send("Q", hs("C-2", "Q"));
    const e = await until(() => t.events.find((x) => x.terminalId === "Q"));
    expect(e.event).toMatchObject({ type: "handshake_result", match: true });
  });

  it("switches the relay with power_on and power_off, and the acks carry the register", async () => {
    const t = await setup();
    const term = t.gw.addTerminal("T1", { energyWh: 5000, currentA: 10, voltageV: 360 });
    t.send("T1", { type: "power_on", cmdId: "C-1", sessionId: "S-9", limitWh: 2000 });
    await until(() => t.events[0]);
    expect(term.relay).toBe("on");
    expect(term.sessionId).toBe("S-9");
    expect(t.events[0]!.event).toEqual({ type: "power_on_ack", sessionId: "S-9", energyWh: 5000, ts: t.now() });

    t.advance(60_000); // 3600 W for one minute: 60 Wh
    t.send("T1", { type: "power_off", cmdId: "C-2", sessionId: "S-9", reason: "user_stop" });
    await until(() => t.events[1]);
    expect(term.relay).toBe("off");
    expect(term.sessionId).toBeUndefined();
    expect(t.events[1]!.event).toEqual({ type: "power_off_ack", sessionId: "S-9", energyWh: 5060, ts: t.now() });
  });

  it("applies a command at once but answers after ackDelayMs, and powerOnAck:false never answers", async () => {
    const t = await setup();
    const slow = t.gw.addTerminal("SLOW", { ackDelayMs: 150 });
    const mute = t.gw.addTerminal("MUTE", { powerOnAck: false });
    const sent = Date.now();
    t.send("SLOW", { type: "power_on", cmdId: "C-1", sessionId: "S-1" });
    t.send("MUTE", { type: "power_on", cmdId: "C-2", sessionId: "S-2" });
    await until(() => (slow.relay === "on" && mute.relay === "on" ? true : undefined));
    expect(t.events).toHaveLength(0);
    await until(() => t.events[0]);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(140);
    await t.settle();
    expect(t.events.map((e) => e.terminalId)).toEqual(["SLOW"]);
  });

  it("answers a repeated cmdId again but applies it once", async () => {
    const t = await setup();
    const term = t.gw.addTerminal("T1", { energyWh: 1000, currentA: 10, voltageV: 100 });
    const on: Command = { type: "power_on", cmdId: "C-1", sessionId: "S-1" };
    t.send("T1", on);
    await until(() => t.events[0]);
    t.advance(36_000); // 1000 W for 10 s: 10 Wh
    t.send("T1", on);
    await until(() => t.events[1]);
    // The same answer again, not a second power-on at a later register.
    expect(t.events[1]!.event).toEqual(t.events[0]!.event);
    expect(t.events[1]!.event).toMatchObject({ energyWh: 1000 });

    t.send("T1", { type: "power_off", cmdId: "C-2", sessionId: "S-1", reason: "target_reached" });
    await until(() => t.events[2]);
    // A late repeat of the power_on must not switch the relay back on.
    t.send("T1", on);
    await until(() => t.events[3]);
    expect(term.relay).toBe("off");
    expect(t.events[3]!.event).toEqual(t.events[0]!.event);
    expect(term.commands.map((c) => c.cmdId)).toEqual(["C-1", "C-1", "C-2", "C-1"]);
    expect(term.events).toHaveLength(4);
  });

  it("publishes readings on tick whose register grows by exactly V×I×dt/3600", async () => {
    const t = await setup();
    const term = t.gw.addTerminal("T1", { energyWh: 125_000, currentA: 16.8, voltageV: 221.4, leakA: 0.25 });
    term.forceRelay("on");
    const steps = [0, 1000, 2500, 1, 997];
    for (const dt of steps) {
      t.advance(dt);
      t.gw.tick();
    }
    term.forceRelay("off"); // now only the leak counts
    t.advance(4000);
    t.gw.tick();
    await until(() => (t.tel.length === steps.length + 1 ? true : undefined));

    const readings = t.tel.map((m) => m.json<Reading>());
    expect(t.tel.map((m) => m.headers?.get("Nats-Msg-Id"))).toEqual(readings.map((r) => `T1:${r.ts}`));
    expect(readings.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(readings[0]).toEqual({
      ts: t.now() - 8498,
      seq: 0,
      state: "on",
      currentA: 16.8,
      voltageV: 221.4,
      powerW: 3719.52,
      energyWh: 125_000,
    });
    for (let i = 1; i < readings.length; i++) {
      const [a, b] = [readings[i - 1]!, readings[i]!];
      const amps = b.state === "on" ? 16.8 : 0.25;
      expect(b.currentA).toBe(amps);
      const expected = (221.4 * amps * (b.ts - a.ts)) / 3_600_000;
      // Each register is rounded to 3 decimals, so a difference is within 0.001 of the truth.
      expect(Math.abs(b.energyWh - a.energyWh - expected)).toBeLessThanOrEqual(0.001 + 1e-9);
    }
    // The total has no accumulated rounding error.
    expect(readings.at(-1)!.energyWh).toBe(Math.round((125_000 + (221.4 * 16.8 * 4498 + 221.4 * 0.25 * 4000) / 3_600_000) * 1000) / 1000);
  });

  it("restarts seq at 0 after boot and announces it", async () => {
    const t = await setup();
    const term = t.gw.addTerminal("T1");
    t.gw.tick();
    t.gw.tick();
    t.advance(1000);
    term.boot();
    t.gw.tick();
    await until(() => (t.tel.length === 3 && t.events.length === 1 ? true : undefined));
    expect(t.tel.map((m) => m.json<Reading>().seq)).toEqual([0, 1, 0]);
    expect(t.events[0]!.event).toEqual({ type: "boot", energyWh: 100_000, ts: t.now() });
  });

  it("in batch mode publishes one telb message per tick with all online terminals", async () => {
    const t = await setup({ batch: true });
    t.gw.addTerminal("A");
    t.gw.addTerminal("B", { voltageV: 230 });
    t.gw.addTerminal("C", { online: false });
    t.advance(1000);
    const out = t.gw.tick();
    await until(() => t.telb[0]);
    await t.settle();
    expect(t.telb).toHaveLength(1);
    expect(t.tel).toHaveLength(0);
    const body = t.telb[0]!.json<{ readings: (Reading & { terminalId: string })[] }>();
    expect(body.readings.map((r) => r.terminalId)).toEqual(["A", "B"]);
    expect(body.readings[1]).toMatchObject({ ts: t.now(), seq: 0, state: "off", voltageV: 230, currentA: 0 });
    expect(body.readings).toEqual(out);
  });

  it("an offline terminal publishes nothing and answers nothing", async () => {
    const t = await setup();
    const off = t.gw.addTerminal("GONE", { online: false });
    t.gw.addTerminal("HERE");
    t.gw.tick();
    t.send("GONE", hs("C-1", "GONE"));
    t.send("GONE", { type: "power_on", cmdId: "C-2", sessionId: "S-1" });
    t.send("HERE", hs("C-3", "HERE"));
    await until(() => t.events.find((e) => e.terminalId === "HERE"));
    await t.settle();
    expect(t.tel.map((m) => m.subject)).toEqual([s.tel(t.gatewayId, "HERE")]);
    expect(t.events.map((e) => e.terminalId)).toEqual(["HERE"]);
    expect(off.commands).toEqual([]);
    expect(off.relay).toBe("off");
    expect(t.gw.ignored.map((i) => i.reason)).toEqual(["offline", "offline"]);
  });

  it("records invalid commands and commands for unknown terminals, and ignores them", async () => {
    const t = await setup();
    const term = t.gw.addTerminal("T1");
    t.send("T1", { type: "power_on", cmdId: "C-1" });
    t.send("NOPE", hs("C-2", "NOPE"));
    t.send("T1", hs("C-3", "T1"));
    await until(() => t.events[0]);
    expect(t.gw.ignored.map((i) => i.reason)).toEqual(["invalid", "unknown_terminal"]);
    expect(term.commands.map((c) => c.cmdId)).toEqual(["C-3"]);
    expect(term.relay).toBe("off");
  });

  it("publishes events through JetStream once a stream captures them, still visible to core subscribers", async () => {
    const jsm = await jetstreamManager(cloud);
    await jsm.streams.add({ name: s.streams.events, subjects: [s.wild.evt] });
    const t = await setup();
    t.gw.addTerminal("T1");
    t.send("T1", hs("C-1", "T1"));
    await until(() => t.events[0]);
    await t.settle();
    expect(t.events).toHaveLength(1);
    const info = await jsm.streams.info(s.streams.events);
    expect(info.state.messages).toBe(1);
  });

  it("runs on its own timer after start()", async () => {
    const t = await setup({ tickMs: 20, clock: Date.now });
    t.gw.addTerminal("T1");
    t.gw.start();
    await until(() => (t.tel.length >= 3 ? true : undefined));
    await t.gw.stop();
    await t.settle();
    const count = t.tel.length;
    // A window, not a wait for something: three ticks (20 ms) in which a gateway still ticking would publish.
    await new Promise((r) => setTimeout(r, 60));
    expect(t.tel.length).toBe(count);
  });
});
