import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Arm } from "../../contracts/index.ts";
import { NATS_URL } from "../helpers/env.ts";
import { steppedUpTo, testPlatform, type TestPlatform } from "../helpers/platform.ts";

// The control service can be slow to arm a session (a busy moment); the reading that reaches the
// target may then be in the stream before the arm. The processor must cut at once, not a reading later.
let tp: TestPlatform;

beforeAll(async () => {
  tp = await testPlatform({}, { parts: { control: false, writer: false } });
});
afterAll(async () => tp?.[Symbol.asyncDispose]());

describe("an arm that arrives after the target was reached", () => {
  it("is cut from the terminal's newest reading, without waiting for another", async () => {
    const nc = await connect({ servers: NATS_URL });
    const cutoffs = nc.subscribe(tp.p.subjects.cutoff("T1"), { max: 1 });
    // Registered on G1 (as the control service, not running here, would have written it).
    const info = { terminalId: "T1", gatewayId: "G1", franchiseeId: "FR1", regionId: "R1", profile: { onCurrentA: [16, 18], offCurrentMaxA: 0.1, voltageV: [198, 242], faultDebounceS: 2, faultClearS: 10 } };
    await tp.p.buckets.terminals.put("T1", JSON.stringify(info));
    const now = Date.now();
    // Power on at 1000.000 Wh; the newest reading already shows 1002.5 Wh, past a 2 Wh target.
    for (const [i, wh] of [1000.5, 1001.5, 1002.5].entries())
      nc.publish(tp.p.subjects.tel("G1", "T1"), JSON.stringify({ ts: now - 3000 + i * 1000, seq: i, state: "on", currentA: 16, voltageV: 220, energyWh: wh }));
    await nc.flush();
    // Stored and stepped before the arm: the arm is late.
    await steppedUpTo(tp, tp.p.subjects.consumer("processors"), tp.p.subjects.tel("G1", "T1"), (r) => r.seq === 2);
    const arm: Arm = {
      sessionId: "S-late",
      terminalId: "T1",
      gatewayId: "G1",
      startTs: now - 3500,
      startWh: 1000,
      target: { energyWh: 2 },
      capCents: 1000,
      capLookahead: false,
      tariff: { version: 1, timezone: "Asia/Shanghai", periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100, timeCentsPerHour: 0 }] },
    };
    const t0 = Date.now();
    await tp.p.buckets.arms.put("T1", JSON.stringify(arm));
    const got = await Promise.race([
      (async () => {
        for await (const m of cutoffs) return m.json<{ sessionId: string; reason: string; ts: number }>();
        return null;
      })(),
      new Promise<null>((r) => setTimeout(() => r(null), 3000)),
    ]);
    expect(got).toMatchObject({ sessionId: "S-late", reason: "target_reached", ts: now - 1000 });
    // No further reading was published: the cut came from the stream's newest one.
    expect(Date.now() - t0).toBeLessThan(1000);
    await nc.close();
  });
});
