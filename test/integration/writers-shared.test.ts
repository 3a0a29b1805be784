import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newRegistry } from "../../control/index.ts";
import { startWriter } from "../../ingest/index.ts";
import { NATS_URL } from "../helpers/env.ts";
import { seedFleet, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { streamMessages } from "../helpers/streams.ts";

// Two writer instances on one database and one durable consumer (issue 12): every reading stored
// once whichever instance gets it, and the register check the same across instances.
let tp: TestPlatform;
let nc: NatsConnection;
let second: { stop(): Promise<void> } | null = null;
let secondNc: NatsConnection;
const secondRegistry = newRegistry(false);
const T0 = Date.now() - 3_600_000;
const TERMINALS = ["T1", "T2", "T3", "T4"];

beforeAll(async () => {
  tp = await testPlatform({}, { parts: { cutoff: false, faults: false } });
  await seedFleet(tp, { terminals: TERMINALS });
  nc = await connect({ servers: NATS_URL });
  secondNc = await connect({ servers: NATS_URL });
  second = await startWriter({
    nc: secondNc,
    db: tp.p.db,
    subjects: tp.p.subjects,
    log: pino({ level: "silent" }),
    registry: secondRegistry,
    clock: Date.now,
    policy: { retentionDays: 400, compressAfterDays: 2 },
    maxBatch: 7,
  });
});
afterAll(async () => {
  await second?.stop();
  await secondNc?.close();
  await nc?.close();
  await tp?.[Symbol.asyncDispose]();
});

describe("two writer instances on one consumer", () => {
  it("store every reading once and dead-letter every backwards register, whichever instance sees it", { timeout: 180_000 }, async () => {
    const s = tp.p.subjects;
    const good = new Map<string, number>();
    const backwards: string[] = [];
    // Rounds of readings, good ones mostly sent twice (a gateway's repeat); every sixth round, once the
    // readings before it are stored (a gateway sends a terminal's readings seconds apart), each
    // terminal sends a register below its previous one (only that one) in the same boot (seq goes on). The instance
    // that gets it may have stored none of that terminal's recent readings itself.
    const storedCount = async () => (await tp.p.db.query("SELECT count(*)::int AS n FROM readings")).rows[0].n as number;
    let sent = 0;
    for (let i = 1; i <= 60; i++) {
      if (i % 6 === 0) await until(async () => (await storedCount()) === sent, 30_000);
      for (const t of TERMINALS) {
        const ts = T0 + i * 1000;
        if (i % 6 === 0) {
          nc.publish(s.tel("G1", t), JSON.stringify({ ts, seq: i, state: "on", currentA: 16, voltageV: 220, energyWh: 1000 + i - 1.5 }));
          backwards.push(`${t}:${ts}`);
          continue;
        }
        const r = JSON.stringify({ ts, seq: i, state: "on", currentA: 16, voltageV: 220, energyWh: 1000 + i });
        nc.publish(s.tel("G1", t), r);
        // (Not the one before a backwards register: one instance alone has seen it.)
        if ((i + 1) % 6 !== 0) nc.publish(s.tel("G1", t), r);
        good.set(t, (good.get(t) ?? 0) + 1);
        sent++;
      }
      await nc.flush();
    }
    await nc.flush();

    const dead = await until(async () => {
      const d = (await streamMessages<{ reason: string; code?: string; payload: string }>(tp.p.nc, s.streams.dlq)).filter((m) => m.data.reason.includes("energyWh"));
      return d.length >= backwards.length ? d : null;
    }, 60_000);
    expect(dead.length).toBe(backwards.length);
    const rows = await until(async () => {
      const r = await tp.p.db.query<{ terminal_id: string; n: number }>("SELECT terminal_id, count(*)::int AS n FROM readings GROUP BY 1 ORDER BY 1");
      const total = r.rows.reduce((a, x) => a + x.n, 0);
      return total >= [...good.values()].reduce((a, b) => a + b, 0) ? r.rows : null;
    }, 60_000);
    // Exactly the good readings, each once; no backwards register among them.
    for (const t of TERMINALS) expect(rows.find((x) => x.terminal_id === t)?.n).toBe(good.get(t));
    const back = await tp.p.db.query(
      `SELECT count(*)::int AS n FROM (SELECT energy_mwh < lag(energy_mwh) OVER (PARTITION BY terminal_id ORDER BY ts) AS b FROM readings) x WHERE b`,
    );
    expect(back.rows[0].n).toBe(0);
    // Both instances did a share of the work (else this would test one writer).
    const bySecond = (await secondRegistry.getSingleMetric("vend_readings_stored_total")!.get()).values[0]!.value;
    const total = rows.reduce((a, x) => a + x.n, 0);
    expect(bySecond).toBeGreaterThan(0);
    expect(bySecond).toBeLessThan(total);
    const mark = await tp.p.db.query<{ n: number }>("SELECT count(*)::int AS n FROM reading_marks WHERE ts IS NOT NULL");
    expect(mark.rows[0]!.n).toBe(TERMINALS.length);
  });

  it("a batch behind the terminal's mark: a backwards register after a good reading of the same batch is refused", { timeout: 60_000 }, async () => {
    const s = tp.p.subjects;
    const T9 = T0 + 10 * 60_000;
    const reading = (ts: number, seq: number, energyWh: number) => ({ terminalId: "T4", ts, seq, state: "on", currentA: 16, voltageV: 220, energyWh });
    // The newest first: the mark moves past the batch that follows.
    nc.publish(s.telBatch("G1"), JSON.stringify({ readings: [reading(T9 + 10_000, 910, 5000)] }));
    await until(async () => (await tp.p.db.query("SELECT 1 FROM readings WHERE terminal_id = 'T4' AND ts = vv_ms_to_ts($1)", [T9 + 10_000])).rowCount === 1, 30_000);
    // Then, late, a good reading and one whose register went back, in one batch: neither of them
    // stored when the other is checked, so the check must see the batch as well as the table.
    nc.publish(s.telBatch("G1"), JSON.stringify({ readings: [reading(T9, 900, 4000), reading(T9 + 1000, 901, 3990)] }));
    const dead = await until(async () => {
      const d = (await streamMessages<{ reason: string; payload: string }>(tp.p.nc, s.streams.dlq)).filter((m) => m.data.payload.includes(String(T9 + 1000)));
      return d.length ? d : null;
    }, 30_000);
    expect(dead[0]!.data.reason).toMatch(/below the previous/);
    const stored = await tp.p.db.query<{ ts: number }>("SELECT vv_ts_to_ms(ts)::bigint AS ts FROM readings WHERE terminal_id = 'T4' AND ts >= vv_ms_to_ts($1) ORDER BY ts", [T9]);
    expect(stored.rows.map((r) => Number(r.ts))).toEqual([T9, T9 + 10_000]);
  });
});
