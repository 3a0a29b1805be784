import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Rational, whToMwh, type Command, type TerminalEvent } from "../../contracts/index.ts";
import { ledgerSums } from "../../control/index.ts";
import type { SimTerminal } from "../../cli/index.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

/**
 * The terminal's own limit as the last line: the cloud path (control service and stream
 * processors) dies mid-session while the gateway and NATS keep running. No cloud cutoff can
 * happen; each terminal stops itself at its power_on limit and reports it, and once the control
 * service is back each session ends there, billed exactly on the register the terminal reported.
 */

let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;

// 1000 c/kWh = 1 c per Wh, and 36 c/h = 0.01 c per s. 220 V × 16.8 A = 3696 W ≈ 1.03 Wh per second.
const E = 1000;
const T = 36;

beforeAll(async () => {
  tp = await testPlatform();
  await seedFleet(tp, {
    terminals: ["T1", "T2", "T3"],
    periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: E, timeCentsPerHour: T }],
  });
  gw = await simGateway(tp, { T1: {}, T2: {}, T3: {} }, { tickMs: 100 });
  expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1000, reference: "u1" })).status).toBe(201);
  expect((await tp.api("PUT", "/v1/admin/users/U2", { creditLimitCents: 15 })).status).toBe(200);
  expect((await tp.api("POST", "/v1/admin/users/U3/topups", { amountCents: 1000, reference: "u3" })).status).toBe(201);
  // The terminals must have been seen before a request is accepted.
  await until(async () => (await tp.api("GET", "/v1/terminals/T3")).body?.state === "available");
});

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

const events = <K extends TerminalEvent["type"]>(t: SimTerminal, type: K) =>
  t.events.filter((e): e is Extract<TerminalEvent, { type: K }> => e.type === type);
const commands = <K extends Command["type"]>(t: SimTerminal, type: K) =>
  t.commands.filter((c): c is Extract<Command, { type: K }> => c.type === type);
const mwh = (wh: number) => Number(whToMwh(wh));
/** The session the cutoff processor follows on a terminal, if any. */
async function armedBy(terminalId: string): Promise<string | null> {
  const e = await tp.p.buckets.arms.get(terminalId);
  return e?.operation === "PUT" ? e.json<{ sessionId: string }>().sessionId : null;
}
/** The fee of a flat tariff: mWh × c/kWh / 10⁶ + ms × c/h / 3.6×10⁶, rounded half up once. */
const fee = (energyMwh: number, ms: number) =>
  Number(new Rational(BigInt(energyMwh) * BigInt(E) * 3_600_000n + BigInt(ms) * BigInt(T) * 1_000_000n, 3_600_000_000_000n).roundHalfUp());

describe("the terminal's own limit when the cloud path dies mid-session", () => {
  it("stops each terminal at its limit; back online, the sessions end there, billed on the reported registers", async () => {
    const cases = [
      // An amount target with energy and time prices: time alone would need 432 c for 12 h, more
      // than half of the 20 c, so each side gets 10 c: 10 Wh, 1000 s. The terminal stops short of
      // the amount: `limit`.
      { terminalId: "T1", user: "U1", body: { target: { amountCents: 20 }, payment: "prepaid" }, limitWh: 10, limitS: 1000, reason: "limit" },
      // A postpaid energy target bounded by the 15 c of credit the user has: 7.5 c each side.
      { terminalId: "T2", user: "U2", body: { target: { energyWh: 1000 }, payment: "postpaid" }, limitWh: 7.5, limitS: 750, reason: "limit" },
      // A prepaid energy target: the hold pays for the target itself, which the terminal stops at.
      { terminalId: "T3", user: "U3", body: { target: { energyWh: 18 }, payment: "prepaid" }, limitWh: 18, limitS: 43_200, reason: "target_reached" },
    ] as const;
    const sessions: Record<string, string> = {};
    for (const c of cases) {
      const token = await tp.token(c.user, "user");
      const r = await tp.api("POST", "/v1/charge-requests", { qr: `qr-${c.terminalId}`, ...c.body }, token);
      expect(r.status).toBe(201);
      sessions[c.terminalId] = r.body.sessionId;
    }
    for (const c of cases) {
      await until(async () => (await tp.api("GET", `/v1/sessions/${sessions[c.terminalId]}`)).body.state === "active");
      const on = commands(gw.terminals.get(c.terminalId)!, "power_on")[0]!;
      expect(on).toMatchObject({ sessionId: sessions[c.terminalId], limitWh: c.limitWh, limitS: c.limitS });
    }

    // The cloud path dies: only the writer keeps running; the gateway and NATS stay up.
    await tp.restart({ parts: { control: false, cutoff: false, faults: false } });
    for (const c of cases) {
      const t = gw.terminals.get(c.terminalId)!;
      expect(commands(t, "power_off"), `${c.terminalId} was cut off by the cloud before the outage`).toEqual([]);
      expect(t.relay).toBe("on");
    }

    // Each terminal stops itself at its limit: exactly the limit since power-on, nothing after.
    for (const c of cases) {
      const t = gw.terminals.get(c.terminalId)!;
      const off = await until(async () => events(t, "power_off")[0], 60_000);
      const on = events(t, "power_on_ack")[0]!;
      expect(off).toMatchObject({ sessionId: sessions[c.terminalId], reason: "limit" });
      expect(mwh(off.energyWh) - mwh(on.energyWh)).toBe(c.limitWh * 1000);
    }
    for (const c of cases) {
      const t = gw.terminals.get(c.terminalId)!;
      const off = events(t, "power_off")[0]!;
      await until(async () => (t.lastReading?.ts ?? 0) > off.ts + 1000);
      expect(t.relay).toBe("off");
      expect(t.lastReading).toMatchObject({ state: "off", energyWh: off.energyWh });
    }

    // The control service is back (the processors still down): the reported events end the sessions.
    await tp.restart({ parts: { cutoff: false, faults: false } });
    const fees: Record<string, number> = {};
    for (const c of cases) {
      const t = gw.terminals.get(c.terminalId)!;
      const s = await until(async () => {
        const r = await tp.api("GET", `/v1/sessions/${sessions[c.terminalId]}`);
        return r.body.state === "completed" ? r.body : null;
      }, 30_000);
      const on = events(t, "power_on_ack")[0]!;
      const off = events(t, "power_off")[0]!;
      const energyMwh = mwh(off.energyWh) - mwh(on.energyWh);
      fees[c.terminalId] = fee(energyMwh, off.ts - on.ts);
      expect(s).toMatchObject({ stopReason: c.reason, startedAt: on.ts, endedAt: off.ts, feeCents: fees[c.terminalId] });
      expect(mwh(s.energyWh)).toBe(energyMwh);
      expect(commands(t, "power_off"), "no cloud cutoff reached the terminal").toEqual([]);
    }
    expect(fees).toEqual({ T1: 10, T2: 8, T3: 18 }); // 10 Wh + ~10 s; 7.5 Wh + ~7 s; 18 Wh + ~17 s
    // Money: the prepaid holds settled on the fee, the postpaid fee became debt; ledgers balance.
    const me = async (user: string) => (await tp.api("GET", "/v1/me", undefined, await tp.token(user, "user"))).body;
    const wallets = { U1: { balance: 990, held: 0, debt: 0 }, U2: { balance: 0, held: 0, debt: 8 }, U3: { balance: 982, held: 0, debt: 0 } };
    for (const [user, w] of Object.entries(wallets)) {
      expect(await me(user)).toMatchObject({ balanceCents: w.balance, heldCents: w.held, debtCents: w.debt });
      expect(await ledgerSums(tp.p.db, user)).toEqual(w);
    }
    // No command is left pending, and no terminal stays armed.
    const pending = await tp.p.db.query(`SELECT count(*)::int AS n FROM commands WHERE session_id = ANY($1::text[]) AND status = 'pending'`, [Object.values(sessions)]);
    expect(pending.rows[0].n).toBe(0);
    for (const c of cases) await until(async () => (await armedBy(c.terminalId)) === null);

    // The processors come back too: nothing changes for the ended sessions.
    await tp.restart();
    for (const c of cases) expect((await tp.api("GET", `/v1/sessions/${sessions[c.terminalId]}`)).body).toMatchObject({ state: "completed", feeCents: fees[c.terminalId] });
  }, 150_000);

  it("a late or repeated power_off event of an ended session leaves the terminal's next session alone", async () => {
    const old = events(gw.terminals.get("T1")!, "power_off")[0]!;
    const oldSession = (await tp.api("GET", `/v1/sessions/${old.sessionId}`)).body;
    const token = await tp.token("U1", "user");
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 500 }, payment: "prepaid" }, token);
    expect(r.status).toBe(201);
    const next = r.body.sessionId as string;
    await until(async () => (await tp.api("GET", `/v1/sessions/${next}`)).body.state === "active");
    await until(async () => (await armedBy("T1")) === next);

    // The old session's event again, and a late one with another register, on the terminal's subject.
    const js = jetstream(tp.p.nc);
    await js.publish(tp.p.subjects.evt("G1", "T1"), JSON.stringify(old));
    const last = await js.publish(tp.p.subjects.evt("G1", "T1"), JSON.stringify({ ...old, ts: old.ts + 5, energyWh: old.energyWh + 100 }));
    // Handled once the control service's event consumer has acknowledged past them.
    const jsm = await jetstreamManager(tp.p.nc);
    await until(async () => (await jsm.consumers.info(tp.p.subjects.streams.events, tp.p.subjects.consumer("control_events"))).ack_floor.stream_seq >= last.seq);

    expect((await tp.api("GET", `/v1/sessions/${next}`)).body).toMatchObject({ state: "active", stopReason: null });
    expect(await armedBy("T1")).toBe(next);
    expect(gw.terminals.get("T1")!.relay).toBe("on");
    expect((await tp.api("GET", `/v1/sessions/${old.sessionId}`)).body).toStrictEqual(oldSession);

    expect((await tp.api("POST", `/v1/sessions/${next}/stop`, undefined, token)).status).toBe(202);
    await until(async () => (await tp.api("GET", `/v1/sessions/${next}`)).body.state === "completed");
  }, 60_000);
});
