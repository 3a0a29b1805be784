import { describe, it, expect } from "vitest";
import { checkpointUpTo, finalBill, type Bill } from "../../control/internal.ts";
import { Rational, type Meter, type MeterJson, type Tariff } from "../../contracts/index.ts";

const SH = "Asia/Shanghai";
const MIN = 60_000;
// new Date(1795478400000).toISOString() === "2026-11-24T00:00:00.000Z", which is 08:00 in Shanghai
// (UTC+8, no DST): the boundary between the night (60 c/kWh) and day (120 c/kWh) periods.
const T8 = 1_795_478_400_000;
const START = T8 - 60 * MIN; // 07:00 Shanghai: power on, at 100000 Wh

/** 00:00-08:00 at 60 c/kWh (0.06 c/Wh), 08:00-24:00 at 120 c/kWh (0.12 c/Wh); periods 0 and 1. */
const tariff: Tariff = {
  version: 1,
  timezone: SH,
  periods: [
    { startMin: 0, endMin: 480, energyCentsPerKwh: 60, timeCentsPerHour: 0 },
    { startMin: 480, endMin: 1440, energyCentsPerKwh: 120, timeCentsPerHour: 0 },
  ],
};
/** The same plus 30 c/h at night and 60 c/h by day. */
const timed: Tariff = {
  ...tariff,
  periods: [
    { startMin: 0, endMin: 480, energyCentsPerKwh: 60, timeCentsPerHour: 30 },
    { startMin: 480, endMin: 1440, energyCentsPerKwh: 120, timeCentsPerHour: 60 },
  ],
};

type Session = Parameters<typeof finalBill>[0];
function aSession(override: Partial<Session> = {}): Session {
  return { sessionId: "S-1", startedAt: START, startWh: 100_000, capCents: 10_000, ...override };
}

/** A processor checkpoint written out by hand: `byPeriod` as [period, mWh, ms]. */
function aMeter(o: Partial<Omit<Meter, "byPeriod">> & { byPeriod?: [number, bigint, number][] } = {}): Meter {
  const { byPeriod = [], ...rest } = o;
  return {
    sessionId: "S-1",
    startTs: START,
    startMwh: 100_000_000n,
    lastTs: START,
    lastMwh: 100_000_000n,
    ...rest,
    byPeriod: new Map(byPeriod.map(([p, mwh, ms]) => [p, { mwh: new Rational(mwh), ms }])),
  };
}

/** The checkpoint at 07:30: 500 Wh at night, 30 c. */
const at0730 = aMeter({ lastTs: T8 - 30 * MIN, lastMwh: 100_500_000n, byPeriod: [[0, 500_000n, 30 * MIN]] });
/** A checkpoint exactly on the boundary, 08:00: 500 Wh over 07:00-08:00, all night. */
const at0800 = aMeter({ lastTs: T8, lastMwh: 100_500_000n, byPeriod: [[0, 500_000n, 60 * MIN]] });

function json(o: {
  sessionId?: string;
  startTs?: number;
  startMwh?: string;
  lastTs: number;
  lastMwh: string;
  byPeriod: MeterJson["byPeriod"];
}): MeterJson {
  return { sessionId: "S-1", startTs: START, startMwh: "100000000", ...o };
}

describe("finalBill", () => {
  it.each<{ name: string; session?: Partial<Session>; t?: Tariff; checkpoint: Meter | null; end: Parameters<typeof finalBill>[3]; bill: Bill }>([
    {
      // 1100 Wh over 07:00-08:30, split by time: 2/3 at night (733.333 Wh, 44 c), 1/3 by day (366.667 Wh, 44 c).
      name: "no checkpoint: from the power-on point to the ack, across 08:00",
      checkpoint: null,
      end: { ts: T8 + 30 * MIN, energyWh: 101_100 },
      bill: {
        energyMwh: 1_100_000,
        endMwh: 101_100_000,
        durationMs: 90 * MIN,
        feeCents: 88,
        meter: json({ lastTs: T8 + 30 * MIN, lastMwh: "101100000", byPeriod: { "0": { mwh: "2200000/3", ms: 60 * MIN }, "1": { mwh: "1100000/3", ms: 30 * MIN } } }),
      },
    },
    {
      // Checkpoint: 500 Wh by 07:30 (30 c). Ack stretch 07:30-08:30: 600 Wh, 300 at night (18 c), 300 by day (36 c).
      name: "this session's checkpoint plus the ack stretch: energy at reading resolution",
      checkpoint: at0730,
      end: { ts: T8 + 30 * MIN, energyWh: 101_100 },
      bill: {
        energyMwh: 1_100_000,
        endMwh: 101_100_000,
        durationMs: 90 * MIN,
        feeCents: 84,
        meter: json({ lastTs: T8 + 30 * MIN, lastMwh: "101100000", byPeriod: { "0": { mwh: "800000", ms: 60 * MIN }, "1": { mwh: "300000", ms: 30 * MIN } } }),
      },
    },
    {
      name: "another session's checkpoint is ignored: billed from the power-on point",
      checkpoint: aMeter({ sessionId: "S-0", startTs: START - 7_200_000, startMwh: 99_000_000n, lastTs: T8 - 30 * MIN, lastMwh: 100_500_000n, byPeriod: [[0, 1_500_000n, 150 * MIN]] }),
      end: { ts: T8 + 30 * MIN, energyWh: 101_100 },
      bill: {
        energyMwh: 1_100_000,
        endMwh: 101_100_000,
        durationMs: 90 * MIN,
        feeCents: 88,
        meter: json({ lastTs: T8 + 30 * MIN, lastMwh: "101100000", byPeriod: { "0": { mwh: "2200000/3", ms: 60 * MIN }, "1": { mwh: "1100000/3", ms: 30 * MIN } } }),
      },
    },
    {
      name: "last_seen ends at the checkpoint's last register",
      checkpoint: at0730,
      end: "last_seen",
      bill: {
        energyMwh: 500_000,
        endMwh: 100_500_000,
        durationMs: 30 * MIN,
        feeCents: 30,
        meter: json({ lastTs: T8 - 30 * MIN, lastMwh: "100500000", byPeriod: { "0": { mwh: "500000", ms: 30 * MIN } } }),
      },
    },
    {
      name: "last_seen with no checkpoint: nothing seen, nothing billed",
      checkpoint: null,
      end: "last_seen",
      bill: { energyMwh: 0, endMwh: 100_000_000, durationMs: 0, feeCents: 0, meter: json({ lastTs: START, lastMwh: "100000000", byPeriod: {} }) },
    },
    {
      name: "last_seen with another session's checkpoint: nothing of this session seen",
      checkpoint: { ...at0730, sessionId: "S-0" },
      end: "last_seen",
      bill: { energyMwh: 0, endMwh: 100_000_000, durationMs: 0, feeCents: 0, meter: json({ lastTs: START, lastMwh: "100000000", byPeriod: {} }) },
    },
    {
      // The terminal's clock stamped the ack at the last reading's time, with 10 Wh more: 510 Wh × 0.06 = 30.6 c.
      name: "ack stamped at the last reading with a higher register: the extra goes to that reading's period",
      checkpoint: at0730,
      end: { ts: T8 - 30 * MIN, energyWh: 100_510 },
      bill: {
        energyMwh: 510_000,
        endMwh: 100_510_000,
        durationMs: 30 * MIN,
        feeCents: 31,
        meter: json({ lastTs: T8 - 30 * MIN, lastMwh: "100510000", byPeriod: { "0": { mwh: "510000", ms: 30 * MIN } } }),
      },
    },
    {
      // 525 Wh × 0.06 = 31.5 c exactly: half up to 32. The duration stays at the last reading.
      name: "ack stamped before the last reading with a higher register: its extra still counts",
      checkpoint: at0730,
      end: { ts: T8 - 31 * MIN, energyWh: 100_525 },
      bill: {
        energyMwh: 525_000,
        endMwh: 100_525_000,
        durationMs: 30 * MIN,
        feeCents: 32,
        meter: json({ lastTs: T8 - 30 * MIN, lastMwh: "100525000", byPeriod: { "0": { mwh: "525000", ms: 30 * MIN } } }),
      },
    },
    {
      name: "ack stamped before the last reading with a register no higher: nothing to add",
      checkpoint: at0730,
      end: { ts: T8 - 31 * MIN, energyWh: 100_500 },
      bill: {
        energyMwh: 500_000,
        endMwh: 100_500_000,
        durationMs: 30 * MIN,
        feeCents: 30,
        meter: json({ lastTs: T8 - 30 * MIN, lastMwh: "100500000", byPeriod: { "0": { mwh: "500000", ms: 30 * MIN } } }),
      },
    },
    {
      name: "ack stamped before the last reading with a lower register: the higher one seen stands",
      checkpoint: at0730,
      end: { ts: T8 - 31 * MIN, energyWh: 100_400 },
      bill: {
        energyMwh: 500_000,
        endMwh: 100_500_000,
        durationMs: 30 * MIN,
        feeCents: 30,
        meter: json({ lastTs: T8 - 30 * MIN, lastMwh: "100500000", byPeriod: { "0": { mwh: "500000", ms: 30 * MIN } } }),
      },
    },
    {
      // The last reading is at 08:00 sharp, the first instant of the day period: the extra energy came
      // after it, so it is priced by day: 30 + 20 × 0.12 = 32.4 c (at night it would be 31.2).
      name: "ack at a last reading stamped exactly 08:00: the extra is day energy",
      checkpoint: at0800,
      end: { ts: T8, energyWh: 100_520 },
      bill: {
        energyMwh: 520_000,
        endMwh: 100_520_000,
        durationMs: 60 * MIN,
        feeCents: 32,
        meter: json({ lastTs: T8, lastMwh: "100520000", byPeriod: { "0": { mwh: "500000", ms: 60 * MIN }, "1": { mwh: "20000", ms: 0 } } }),
      },
    },
    {
      // With no checkpoint the "last reading" is power on itself: 07:00, night, 0.3 c → 0.
      name: "no checkpoint, ack stamped at the power-on time: the extra is billed at power-on's period",
      checkpoint: null,
      end: { ts: START, energyWh: 100_005 },
      bill: { energyMwh: 5_000, endMwh: 100_005_000, durationMs: 0, feeCents: 0, meter: json({ lastTs: START, lastMwh: "100005000", byPeriod: { "0": { mwh: "5000", ms: 0 } } }) },
    },
    {
      name: "the fee is capped: 84 c with a cap of 80",
      session: { capCents: 80 },
      checkpoint: at0730,
      end: { ts: T8 + 30 * MIN, energyWh: 101_100 },
      bill: {
        energyMwh: 1_100_000,
        endMwh: 101_100_000,
        durationMs: 90 * MIN,
        feeCents: 80,
        meter: json({ lastTs: T8 + 30 * MIN, lastMwh: "101100000", byPeriod: { "0": { mwh: "800000", ms: 60 * MIN }, "1": { mwh: "300000", ms: 30 * MIN } } }),
      },
    },
    {
      name: "a cap exactly the fee changes nothing: 84 of 84",
      session: { capCents: 84 },
      checkpoint: at0730,
      end: { ts: T8 + 30 * MIN, energyWh: 101_100 },
      bill: {
        energyMwh: 1_100_000,
        endMwh: 101_100_000,
        durationMs: 90 * MIN,
        feeCents: 84,
        meter: json({ lastTs: T8 + 30 * MIN, lastMwh: "101100000", byPeriod: { "0": { mwh: "800000", ms: 60 * MIN }, "1": { mwh: "300000", ms: 30 * MIN } } }),
      },
    },
    {
      name: "a cap of 1 c under the fee: 83",
      session: { capCents: 83 },
      checkpoint: at0730,
      end: { ts: T8 + 30 * MIN, energyWh: 101_100 },
      bill: {
        energyMwh: 1_100_000,
        endMwh: 101_100_000,
        durationMs: 90 * MIN,
        feeCents: 83,
        meter: json({ lastTs: T8 + 30 * MIN, lastMwh: "101100000", byPeriod: { "0": { mwh: "800000", ms: 60 * MIN }, "1": { mwh: "300000", ms: 30 * MIN } } }),
      },
    },
    {
      // 88 c of energy + 1 h × 30 c at night + 0.5 h × 60 c by day = 88 + 30 + 30.
      name: "time prices: the ack stretch adds its time per period",
      t: timed,
      checkpoint: null,
      end: { ts: T8 + 30 * MIN, energyWh: 101_100 },
      bill: {
        energyMwh: 1_100_000,
        endMwh: 101_100_000,
        durationMs: 90 * MIN,
        feeCents: 148,
        meter: json({ lastTs: T8 + 30 * MIN, lastMwh: "101100000", byPeriod: { "0": { mwh: "2200000/3", ms: 60 * MIN }, "1": { mwh: "1100000/3", ms: 30 * MIN } } }),
      },
    },
    {
      // A register below the last one adds no energy (a meter fault is no refund); the time still counts.
      name: "an ack register below the checkpoint's: energy stays, time runs on",
      checkpoint: at0730,
      end: { ts: T8 + 30 * MIN, energyWh: 100_400 },
      bill: {
        energyMwh: 500_000,
        endMwh: 100_500_000,
        durationMs: 90 * MIN,
        feeCents: 30,
        meter: json({ lastTs: T8 + 30 * MIN, lastMwh: "100500000", byPeriod: { "0": { mwh: "500000", ms: 60 * MIN }, "1": { mwh: "0", ms: 30 * MIN } } }),
      },
    },
  ])("$name", ({ session, t, checkpoint, end, bill }) => {
    expect(finalBill(aSession(session), t ?? tariff, checkpoint, end)).toStrictEqual(bill);
  });

  describe("energy is the ack register minus the start register, exactly in mWh", () => {
    it.each([
      // [start Wh, ack Wh, mWh] — decimal registers whose float difference is not exact
      [125_034.2, 125_300.5, 266_300], // 125300.5 - 125034.2 = 266.30000000000291 in floats
      [0.1, 0.3, 200], // 0.3 - 0.1 = 0.19999999999999998
      [99_999.999, 100_000, 1],
      [1_000_000.001, 1_000_000.002, 1],
      [42, 42, 0],
      [0, 1_000_000, 1_000_000_000],
    ])("%s → %s Wh: %s mWh", (startWh, ackWh, mwh) => {
      for (const checkpoint of [null, aMeter({ startMwh: BigInt(Math.round(startWh * 1000)), lastMwh: BigInt(Math.round(startWh * 1000)) })]) {
        const b = finalBill(aSession({ startWh }), tariff, checkpoint, { ts: START + 10 * MIN, energyWh: ackWh });
        expect(b.energyMwh).toBe(mwh);
        expect(b.endMwh).toBe(Math.round(ackWh * 1000));
      }
    });

    it("266.3 Wh at night is 15.978 c → 16", () => {
      expect(finalBill(aSession({ startWh: 125_034.2 }), tariff, null, { ts: START + 10 * MIN, energyWh: 125_300.5 }).feeCents).toBe(16);
    });
  });

  it("does not change the checkpoint it was given", () => {
    const plain = (m: Meter) => ({ ...m, byPeriod: [...m.byPeriod].map(([k, v]) => [k, v.mwh.toString(), v.ms]) });
    const before = plain(at0730);
    finalBill(aSession(), tariff, at0730, { ts: T8 + 30 * MIN, energyWh: 101_100 });
    finalBill(aSession(), tariff, at0730, { ts: T8 - 30 * MIN, energyWh: 100_510 });
    expect(plain(at0730)).toStrictEqual(before);
    expect(before.byPeriod).toStrictEqual([[0, "500000", 30 * MIN]]);
  });
});

describe("checkpointUpTo: the checkpoint cut back to the terminal's own stop", () => {
  // Power on 07:00; the terminal stopped itself at 07:59 at 100600 Wh; the processor had already
  // counted a reading at 08:10 (relay open, same register): 10 min by day that are no session's.
  const past = aMeter({ lastTs: T8 + 10 * MIN, lastMwh: 100_600_000n, byPeriod: [[0, 600_000n, 60 * MIN], [1, 0n, 10 * MIN]] });
  const stop = { ts: T8 - MIN, energyWh: 100_600 };

  it("takes back the time after the stop, period by period, and bills exactly to the stop", () => {
    const m = checkpointUpTo(past, timed, stop)!;
    expect(m.lastTs).toBe(T8 - MIN);
    expect([...m.byPeriod].map(([p, u]) => [p, u.mwh.toString(), u.ms])).toStrictEqual([[0, "600000", 59 * MIN], [1, "0", 0]]);
    const bill = finalBill(aSession(), timed, m, stop);
    // 600 Wh × 0.06 + 59 min × 30 c/h = 36 + 29.5 = 65.5 → 66 (with the 10 min by day: 75.5 → 76).
    expect(bill).toMatchObject({ energyMwh: 600_000, durationMs: 59 * MIN, feeCents: 66 });
    expect(finalBill(aSession(), timed, past, stop)).toMatchObject({ durationMs: 70 * MIN, feeCents: 76 });
  });

  it("keeps a checkpoint that ends at or before the stop", () => {
    expect(checkpointUpTo(at0730, timed, stop)).toBe(at0730);
    expect(checkpointUpTo(null, timed, stop)).toBeNull();
  });

  it("drops a checkpoint that counted energy past the stop's register: the bill runs from power-on", () => {
    expect(checkpointUpTo(past, timed, { ts: T8 - MIN, energyWh: 100_599.999 })).toBeNull();
  });
});
