import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newRegistry } from "../../control/index.ts";
import { startCutoffProcessor, type RunningProcessor } from "../../processors/index.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform, terminalsSeen } from "../helpers/platform.ts";

// Two cutoff processors split the terminals by gateway, as a partitioned deployment would: each
// has its own durable consumer and a filter on its gateways' subjects. Sessions are armed for all
// terminals in one bucket; each processor must act on its own terminals only.
let tp: TestPlatform;
const procs: RunningProcessor[] = [];
const gws: Awaited<ReturnType<typeof simGateway>>[] = [];

beforeAll(async () => {
  tp = await testPlatform({ SESSION_SILENCE_S: "2", CONTROL_TICK_MS: "100" }, { parts: { cutoff: false } });
  await seedFleet(tp, { terminals: ["T1"] });
  await tp.api("PUT", "/v1/admin/gateways/G2", { regionId: "R1" });
  await tp.api("PUT", "/v1/admin/terminals/T2", { qr: "qr-T2", gatewayId: "G2", regionId: "R1", franchiseeId: "FR1" });
  for (const [i, gw] of ["G1", "G2"].entries()) procs.push(await partition(i, gw));
  gws.push(await simGateway(tp, { T1: {} }, { tickMs: 100 }));
  gws.push(await simGateway(tp, { T2: {} }, { tickMs: 100, gatewayId: "G2" }));
  await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 10_000, reference: "seed" });
  for (const g of gws) await terminalsSeen(tp, g);
});

/** Partition i: its own durable, and only the readings of gateway gw. */
function partition(i: number, gw: string): Promise<RunningProcessor> {
  const { nc, subjects: s, buckets } = tp.p;
  return startCutoffProcessor({
    nc,
    subjects: s,
    buckets,
    log: pino({ level: "warn" }),
    registry: newRegistry(false),
    clock: Date.now,
    silenceMs: 2000,
    durable: s.consumer(`cutoff_p${i}`),
    filterSubject: s.tel(gw, "*"),
  });
}

afterAll(async () => {
  for (const g of gws) await g.stop();
  for (const p of procs) await p.stop();
  await tp?.[Symbol.asyncDispose]();
});

describe("partitioned cutoff processors", () => {
  it("each cuts its own terminals' sessions at their targets, and neither mistakes the other's for silent", async () => {
    const user = await tp.token("U1", "user");
    // 3.5 s of charging: longer than the 2 s silence limit, so a processor that watched the other
    // partition's terminal (whose readings it never sees) would cut it terminal_offline.
    const a = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { durationS: 3 }, payment: "prepaid" }, user);
    const b = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T2", target: { durationS: 3 }, payment: "prepaid" }, user);
    expect([a.status, b.status]).toEqual([201, 201]);
    for (const id of [a.body.sessionId, b.body.sessionId]) {
      const s = await until(async () => {
        const r = await tp.api("GET", `/v1/sessions/${id}`, undefined, user);
        return r.body.state === "completed" ? r.body : null;
      });
      expect(s.stopReason).toBe("target_reached");
      expect(s.durationS).toBeGreaterThanOrEqual(3);
    }
    // Each processor checkpointed its own terminal's meter, under its own name.
    const owners = await Promise.all(
      ["T1", "T2"].map(async (t) => {
        const { rows } = await tp.p.db.query("SELECT meter FROM sessions WHERE terminal_id = $1", [t]);
        return rows[0].meter !== null;
      }),
    );
    expect(owners).toEqual([true, true]);
  });

  it("a restarted partition restores only its own checkpoints and still cuts at the target", async () => {
    const user = await tp.token("U1", "user");
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T2", target: { energyWh: 2.5 }, payment: "prepaid" }, user);
    const id = r.body.sessionId;
    await until(async () => (await tp.api("GET", `/v1/sessions/${id}`, undefined, user)).body.energyWh > 0.5);
    await procs[1]!.stop();
    procs[1] = await partition(1, "G2");
    const done = await until(async () => {
      const x = await tp.api("GET", `/v1/sessions/${id}`, undefined, user);
      return x.body.state === "completed" ? x.body : null;
    });
    expect(done.stopReason).toBe("target_reached");
    expect(done.energyWh).toBeGreaterThanOrEqual(2.5);
    expect(done.energyWh).toBeLessThan(3);
  });
});
