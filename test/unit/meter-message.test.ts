import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkpointUpTo, finalBill, meterFrom } from "../../control/internal.ts";
import { advance, meterFromJson, startMeter, type Meter, type Tariff } from "../../contracts/index.ts";
import { meterMessageOf, type TerminalState } from "../../processors/internal.ts";

// 2026-11-24T00:00Z is 08:00 in Shanghai: the night/day boundary; 20:00 is the day/evening one.
const T8 = 1_795_478_400_000;
const tariff: Tariff = {
  version: 1,
  timezone: "Asia/Shanghai",
  periods: [
    { startMin: 0, endMin: 480, energyCentsPerKwh: 60, timeCentsPerHour: 30 },
    { startMin: 480, endMin: 1200, energyCentsPerKwh: 120, timeCentsPerHour: 60 },
    { startMin: 1200, endMin: 1440, energyCentsPerKwh: 90, timeCentsPerHour: 45 },
  ],
};

/**
 * The control service bills from the newest meter message advanced to the writer's newest stored
 * register, no longer from the processor's checkpoint: for any readings, batches, cutoff and end
 * (power_off_ack after the last reading, or the terminal's own stop before readings that went on
 * with the relay open), the two bills are the same to the mWh, millisecond and cent.
 */
describe("billing from meter messages", () => {
  it("equals billing from the processor's checkpoint", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -3 * 3_600_000, max: 3_600_000 }),
        fc.array(fc.record({ gap: fc.integer({ min: 1, max: 900_000 }), mwh: fc.integer({ min: 0, max: 5000 }), batchEnd: fc.boolean() }), { minLength: 1, maxLength: 40 }),
        fc.option(fc.nat(39)),
        fc.record({ gap: fc.integer({ min: 0, max: 900_000 }), mwh: fc.integer({ min: 0, max: 5000 }) }),
        fc.option(fc.nat(39)),
        (startOffset, steps, cutAt, tail, stopAt) => {
          const start = T8 + startOffset;
          const session = { sessionId: "S-1", startedAt: start, startWh: 1000, capCents: 1_000_000 };
          // The terminal's own stop after reading `stopAt`: the register stands still from there.
          const stop = stopAt !== null && stopAt < steps.length - 1 ? stopAt : null;
          const readings: { ts: number; energyWh: number }[] = [];
          let ts = start;
          let mwh = 1_000_000;
          steps.forEach((s, i) => {
            ts += s.gap;
            if (stop === null || i <= stop) mwh += s.mwh;
            readings.push({ ts, energyWh: mwh / 1000 });
          });
          // The processor: a checkpoint per reading, messages decided per batch against the held state.
          let held: TerminalState = { arm: null, tariff, meter: startMeter("S-1", start, 1000), cutoff: null, lastSeenAt: start, owned: false, waitingArm: null };
          let work: TerminalState = held;
          let newest: Meter | null = null;
          steps.forEach((s, i) => {
            const meter = advance(work.meter!, tariff, readings[i]!.ts, readings[i]!.energyWh);
            work = { ...work, meter, cutoff: work.cutoff ?? (cutAt === i ? "target_reached" : null) };
            if (s.batchEnd || i === steps.length - 1) {
              const m = meterMessageOf(held, { kind: "save_meter", terminalId: "T1", meter, cutoff: work.cutoff });
              if (m) newest = meterFromJson(m.meter);
              held = work;
            }
          });
          const last = readings[readings.length - 1]!;
          const end =
            stop === null
              ? { ts: last.ts + tail.gap, energyWh: (mwh + tail.mwh) / 1000 }
              : { ts: readings[stop]!.ts + Math.min(tail.gap, 1000), energyWh: readings[stop]!.energyWh };
          const old = finalBill(session, tariff, checkpointUpTo(held.meter, tariff, end), end);
          const stored = [...readings].reverse().find((r) => r.ts <= end.ts) ?? null;
          const now = finalBill(session, tariff, meterFrom(session, tariff, newest, stored, end), end);
          expect(now).toEqual(old);
        },
      ),
      { numRuns: 500 },
    );
  });
});
