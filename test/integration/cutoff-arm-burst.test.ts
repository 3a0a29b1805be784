import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Arm, Cutoff } from "../../contracts/index.ts";
import { decodeMeterRecord } from "../../processors/index.ts";
import { steppedUpTo, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// Issue 17: the cutoff stage steps the arm changes that are waiting together, as one unit (one
// round trip for their newest-reading look-ups and one for their effects, not one per change). A
// burst of arms and disarms, as the control service writes them when many sessions start and end
// at once, must still come out as if each had been stepped alone, in the watch's order.
const N = 300;
let tp: TestPlatform;

const profile = { onCurrentA: [16, 18], offCurrentMaxA: 0.1, voltageV: [198, 242], faultDebounceS: 2, faultClearS: 10 };
const armOf = (terminalId: string, sessionId: string, startTs: number, targetWh: number): Arm => ({
  sessionId,
  terminalId,
  gatewayId: "G1",
  startTs,
  startWh: 1000,
  target: { energyWh: targetWh },
  capCents: 100_000,
  capLookahead: false,
  tariff: { version: 1, timezone: "UTC", periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100, timeCentsPerHour: 0 }] },
});

beforeAll(async () => {
  // The processors only (the control service would repair the hand-written arms away).
  tp = await testPlatform({}, { parts: { control: false, writer: false } });
}, 60_000);
afterAll(async () => tp?.[Symbol.asyncDispose]());

describe("a burst of arm changes", () => {
  it("is stepped in order: late arms cut from the newest reading, re-armed terminals keep only the last session, disarmed ones none", async () => {
    const { nc, subjects: s, buckets } = tp.p;
    const ids = Array.from({ length: N }, (_, i) => `B${i}`);
    await Promise.all(ids.map((t) => buckets.terminals.put(t, JSON.stringify({ terminalId: t, gatewayId: "G1", franchiseeId: "FR1", regionId: "R1", profile }))));
    const cutoffs: Cutoff[] = [];
    const sub = nc.subscribe(s.wild.cutoff, { callback: (_e, m) => void cutoffs.push(m.json<Cutoff>()) });

    // Every terminal's newest reading is already 2.5 Wh past its power-on point.
    const now = Date.now();
    for (const t of ids) nc.publish(s.tel("G1", t), JSON.stringify({ ts: now - 1000, seq: 1, state: "on", currentA: 16, voltageV: 220, energyWh: 1002.5 }));
    await nc.flush();
    // All stored (one connection's messages are stored in order) and stepped before the arms.
    await steppedUpTo(tp, s.consumer("processors"), s.tel("G1", ids[N - 1]!), (r) => r.seq === 1);

    // Written all at once, so that the watch delivers them while units are running:
    //  - B0..B99: armed with a 2 Wh target (already reached): cut target_reached, from the stream;
    //  - B100..B199: armed with a 2 Wh target, then disarmed: no meter, and no cutoff needed;
    //  - B200..B299: armed as session A (2 Wh), then re-armed as session B (1 kWh): only B, uncut.
    await Promise.all(ids.map((t) => buckets.arms.put(t, JSON.stringify(armOf(t, `A-${t}`, now - 3000, 2)))));
    await Promise.all(ids.slice(100, 200).map((t) => buckets.arms.delete(t)));
    await Promise.all(ids.slice(200).map((t) => buckets.arms.put(t, JSON.stringify(armOf(t, `B-${t}`, now - 500, 1000)))));

    // B0..B99: cut at their target, each once, from the reading that was already in the stream.
    await until(async () => ids.slice(0, 100).every((t) => cutoffs.some((c) => c.sessionId === `A-${t}`)), 30_000);
    for (const t of ids.slice(0, 100)) {
      const mine = cutoffs.filter((c) => c.sessionId === `A-${t}`);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ terminalId: t, reason: "target_reached", ts: now - 1000 });
    }
    // The others settle: B100..B199 hold no meter, B200..B299 the meter of session B, not cut.
    await until(async () => {
      const metered = await Promise.all(ids.slice(100).map(async (t) => [t, await buckets.meters.get(t)] as const));
      return metered.every(([t, e]) => {
        const i = Number(t.slice(1));
        if (i < 200) return !e || e.operation !== "PUT";
        return e?.operation === "PUT" && decodeMeterRecord(e.value).meter.sessionId === `B-${t}`;
      });
    }, 30_000);
    for (const t of ids.slice(200)) expect(decodeMeterRecord((await buckets.meters.get(t))!.value).cutoff).toBeNull();
    // A cutoff of a session disarmed or replaced in the same burst may have gone out (it was armed
    // for a moment, past its target): what matters is that the newest session of each is not cut.
    expect(cutoffs.filter((c) => c.sessionId.startsWith("B-"))).toEqual([]);
    sub.unsubscribe();
  }, 90_000);
});
