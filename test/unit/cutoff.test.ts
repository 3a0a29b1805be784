import { describe, it, expect } from "vitest";
import { decideCutoff, emptyState, step, takesArms, wants, type CutoffConfig, type CutoffEffect, type TerminalState } from "../../processors/internal.ts";
import { Rational, type Arm, type Meter, type Reading, type Tariff, type TerminalInfo } from "../../contracts/index.ts";

const SH = "Asia/Shanghai";
const MIN = 60_000;
// new Date(1795478400000).toISOString() === "2026-11-24T00:00:00.000Z", which is 08:00 in Shanghai
// (UTC+8, no DST): the boundary between the night (60 c/kWh) and day (120 c/kWh) periods.
const T8 = 1_795_478_400_000;
const START = T8 - 30 * MIN; // 07:30 Shanghai, night: power on
const NOW = T8 + 3_600_000; // the platform's clock, unrelated to reading times

/** 00:00-08:00 at 60 c/kWh (0.06 c/Wh), 08:00-24:00 at 120 c/kWh (0.12 c/Wh); period 0 and 1. */
const periods = [
  { start: "00:00", end: "08:00", energyCentsPerKwh: 60, timeCentsPerHour: 0 },
  { start: "08:00", end: "24:00", energyCentsPerKwh: 120, timeCentsPerHour: 0 },
];
const tariff: Tariff = {
  version: 3,
  timezone: SH,
  periods: [
    { startMin: 0, endMin: 480, energyCentsPerKwh: 60, timeCentsPerHour: 0 },
    { startMin: 480, endMin: 1440, energyCentsPerKwh: 120, timeCentsPerHour: 0 },
  ],
};
/** The same with a time price: 30 c/h at night, 90 c/h by day. */
const timed: Tariff = {
  ...tariff,
  periods: [
    { startMin: 0, endMin: 480, energyCentsPerKwh: 60, timeCentsPerHour: 30 },
    { startMin: 480, endMin: 1440, energyCentsPerKwh: 120, timeCentsPerHour: 90 },
  ],
};

const T1: TerminalInfo = {
  terminalId: "T1",
  gatewayId: "G1",
  franchiseeId: "F1",
  regionId: "R1",
  profile: { onCurrentA: [16, 18], offCurrentMaxA: 0.1, voltageV: [198, 242], faultDebounceS: 2, faultClearS: 10 },
};

/** T1, registered on G1, this consumer's; 30 s of silence cuts; not the static split. */
function config(o: { info?: TerminalInfo | undefined; ours?: boolean; partitioned?: boolean; silenceMs?: number } = {}): CutoffConfig {
  return {
    terminal: { terminalId: "T1", info: "info" in o ? o.info : T1, ours: o.ours ?? true, maxAheadMs: 60_000 },
    silenceMs: o.silenceMs ?? 30_000,
    partitioned: o.partitioned ?? false,
    owner: "vend_cutoff",
  };
}

function anArm(override: Partial<Arm> = {}): Arm {
  return {
    sessionId: "S-1",
    terminalId: "T1",
    startTs: START,
    startWh: 125_000,
    target: { energyWh: 2000 },
    capCents: 100_000,
    capLookahead: false,
    tariff: { version: 3, timezone: SH, periods },
    ...override,
  };
}

/**
 * A meter written out by hand (no `advance`): `byPeriod` as [period, mWh, ms]. The last register
 * defaults to the start plus the mWh of all periods, and the last time to the start plus their ms.
 */
function aMeter(o: { sessionId?: string; startTs?: number; startWh?: number; lastTs?: number; lastMwh?: bigint; byPeriod?: readonly (readonly [number, bigint | Rational, number])[] } = {}): Meter {
  const startTs = o.startTs ?? START;
  const startMwh = BigInt(Math.round((o.startWh ?? 125_000) * 1000));
  const byPeriod = new Map<number, { mwh: Rational; ms: number }>();
  let mwh = 0n;
  let ms = 0;
  for (const [p, e, t] of o.byPeriod ?? []) {
    const r = typeof e === "bigint" ? new Rational(e) : e;
    byPeriod.set(p, { mwh: r, ms: t });
    mwh += r.floor();
    ms += t;
  }
  return {
    sessionId: o.sessionId ?? "S-1",
    startTs,
    startMwh,
    lastTs: o.lastTs ?? startTs + ms,
    lastMwh: o.lastMwh ?? startMwh + mwh,
    byPeriod,
  };
}

function aReading(override: Partial<Reading> & Pick<Reading, "ts" | "energyWh">): Reading {
  return { seq: 1, state: "on", currentA: 16, voltageV: 230, ...override };
}

/** byPeriod as plain values: { period: [mWh as a string, ms] }. */
function usage(m: Meter | null): Record<number, [string, number]> {
  const out: Record<number, [string, number]> = {};
  for (const [k, v] of m?.byPeriod ?? []) out[k] = [v.mwh.toString(), v.ms];
  return out;
}

describe("decideCutoff", () => {
  const R = (s: string) => Rational.parse(s);

  describe("energy target", () => {
    it.each([
      // [name, target Wh, delivered mWh, expected]
      ["nothing delivered", 2000, 0n, null],
      ["1999.999 Wh of 2000", 2000, 1_999_999n, null],
      ["exactly 2000 Wh", 2000, 2_000_000n, "target_reached"],
      ["2000.001 Wh of 2000", 2000, 2_000_001n, "target_reached"],
      ["3000 Wh of 2000 (readings were lost)", 2000, 3_000_000n, "target_reached"],
      ["0.001 Wh target, 0.001 Wh delivered", 0.001, 1n, "target_reached"],
      ["812.5 Wh target, 812.499 Wh delivered", 812.5, 812_499n, null],
      ["812.5 Wh target, 812.5 Wh delivered", 812.5, 812_500n, "target_reached"],
    ] as const)("%s → %s", (_, energyWh, mwh, expected) => {
      // Energy spread over night and day, cheap enough never to touch the cap.
      const half = mwh / 2n;
      const meter = aMeter({ byPeriod: [[0, half, 30 * MIN], [1, mwh - half, 10 * MIN]] });
      expect(decideCutoff(anArm({ target: { energyWh } }), tariff, meter, Rational.ZERO)).toBe(expected);
    });

    it("counts the register difference, not the period sums", () => {
      // The register says 2000 Wh even though the periods hold less (e.g. after a restore).
      const meter = aMeter({ byPeriod: [[0, 1_000_000n, 30 * MIN]], lastMwh: 125_000_000n + 2_000_000n });
      expect(decideCutoff(anArm(), tariff, meter, Rational.ZERO)).toBe("target_reached");
    });
  });

  describe("duration target", () => {
    it.each([
      // [name, durationS, reading time since power-on in ms, expected]
      ["no time yet", 3600, 0, null],
      ["1 ms short of 3600 s", 3600, 3_599_999, null],
      ["exactly 3600 s", 3600, 3_600_000, "target_reached"],
      ["1 ms past 3600 s", 3600, 3_600_001, "target_reached"],
      ["1 ms short of 1 s", 1, 999, null],
      ["exactly 1 s", 1, 1000, "target_reached"],
      ["exactly 7 days", 7 * 86_400, 7 * 86_400_000, "target_reached"],
    ] as const)("%s → %s", (_, durationS, ms, expected) => {
      // Elapsed time is the meter's reading times; the platform clock (NOW) plays no part.
      const meter = aMeter({ lastTs: START + ms, lastMwh: 125_000_000n });
      expect(decideCutoff(anArm({ target: { durationS } }), tariff, meter, Rational.ZERO)).toBe(expected);
    });
  });

  describe("amount target", () => {
    it.each([
      // [name, amountCents, byPeriod, expected]
      ["1000 Wh by day is exactly 120 c", 120, [[1, 1_000_000n, 10 * MIN]], "target_reached"],
      ["999.999 Wh by day is 119.99988 c (would round to 120)", 120, [[1, 999_999n, 10 * MIN]], null],
      ["1000.001 Wh by day is 120.00012 c", 120, [[1, 1_000_001n, 10 * MIN]], "target_reached"],
      ["1000 Wh at night is 60 c of 120", 120, [[0, 1_000_000n, 10 * MIN]], null],
      ["500 Wh at night + 500 Wh by day = 30 + 60 = 90 c", 90, [[0, 500_000n, 30 * MIN], [1, 500_000n, 30 * MIN]], "target_reached"],
      ["500.001 Wh at night + 499.999 by day = 89.99994 c", 90, [[0, 500_001n, 30 * MIN], [1, 499_999n, 30 * MIN]], null],
      ["a fractional split: 2000000/3 mWh by day = 80 c", 80, [[1, R("2000000/3"), 10 * MIN]], "target_reached"],
      ["1999999/3 mWh by day = 79.99996 c", 80, [[1, R("1999999/3"), 10 * MIN]], null],
    ] as const)("%s → %s", (_, amountCents, byPeriod, expected) => {
      const meter = aMeter({ byPeriod: [...byPeriod] });
      const arm = anArm({ target: { amountCents }, capCents: amountCents });
      expect(decideCutoff(arm, tariff, meter, Rational.ZERO)).toBe(expected);
    });

    it("counts time prices too: 20 min by day at 90 c/h + 100 Wh at 120 c/kWh = 30 + 12 c", () => {
      const meter = aMeter({ byPeriod: [[1, 100_000n, 20 * MIN]] });
      expect(decideCutoff(anArm({ target: { amountCents: 42 }, capCents: 42 }), timed, meter, Rational.ZERO)).toBe("target_reached");
      expect(decideCutoff(anArm({ target: { amountCents: 43 }, capCents: 43 }), timed, meter, Rational.ZERO)).toBeNull();
    });
  });

  describe("money cap (prepaid hold, postpaid credit)", () => {
    it.each([
      // [name, target, capCents, byPeriod, expected]
      ["energy target, fee exactly the hold (500 Wh by day = 60 c)", { energyWh: 10_000 }, 60, [[1, 500_000n, 10 * MIN]], "credit_exhausted"],
      ["energy target, fee just below the hold (59.99988 c)", { energyWh: 10_000 }, 60, [[1, 499_999n, 10 * MIN]], null],
      ["energy target, fee past the hold (readings were lost)", { energyWh: 10_000 }, 60, [[1, 900_000n, 10 * MIN]], "credit_exhausted"],
      ["duration target, fee exactly the hold", { durationS: 7200 }, 60, [[1, 500_000n, 10 * MIN]], "credit_exhausted"],
      ["duration target, fee just below", { durationS: 7200 }, 60, [[1, 499_999n, 10 * MIN]], null],
      ["target and cap reached together: the target wins", { energyWh: 500 }, 60, [[1, 500_000n, 10 * MIN]], "target_reached"],
      ["duration and cap reached together: the target wins", { durationS: 600 }, 60, [[1, 500_000n, 10 * MIN]], "target_reached"],
    ] as const)("%s → %s", (_, target, capCents, byPeriod, expected) => {
      const meter = aMeter({ byPeriod: [...byPeriod] });
      expect(decideCutoff(anArm({ target, capCents }), tariff, meter, Rational.ZERO)).toBe(expected);
    });

    it("a time price alone can exhaust a hold: 40 min by day at 90 c/h = 60 c", () => {
      const meter = aMeter({ byPeriod: [[1, 0n, 40 * MIN]] });
      expect(decideCutoff(anArm({ target: { energyWh: 10_000 }, capCents: 60 }), timed, meter, Rational.ZERO)).toBe("credit_exhausted");
      expect(decideCutoff(anArm({ target: { energyWh: 10_000 }, capCents: 60 }), timed, aMeter({ byPeriod: [[1, 0n, 40 * MIN - 1]] }), Rational.ZERO)).toBeNull();
    });
  });

  describe("a free tariff (every price 0): the hold, and so capCents, is 0", () => {
    // maxCostCents gives 0 for any target on a free tariff (see hold.test.ts), so the control
    // service arms prepaid sessions with capCents 0, and postpaid ones with min(0, credit) = 0.
    // Nothing can ever cost anything, so the money cap must not cut; only the target may.
    const free: Tariff = { ...tariff, periods: tariff.periods.map((p) => ({ ...p, energyCentsPerKwh: 0, timeCentsPerHour: 0 })) };

    it.each([
      // [name, capLookahead, delivered mWh, expected]
      ["prepaid, 1000 of 2000 Wh delivered free → runs on", false, 1_000_000n, null],
      ["postpaid, 1000 of 2000 Wh delivered free → runs on", true, 1_000_000n, null],
      ["prepaid, 2000 of 2000 Wh delivered free → target_reached", false, 2_000_000n, "target_reached"],
    ] as const)("%s", (_, capLookahead, mwh, expected) => {
      const meter = aMeter({ byPeriod: [[1, mwh, 10 * MIN]] });
      expect(decideCutoff(anArm({ target: { energyWh: 2000 }, capCents: 0, capLookahead }), free, meter, Rational.ZERO)).toBe(expected);
    });
  });

  describe("postpaid lookahead: cut one reading early", () => {
    it.each([
      // [name, capLookahead, mWh by day now, fee at the previous reading, expected]
      // 450 Wh by day = 54 c; 400 Wh = 48 c: the last interval cost 6 c.
      ["54 + 6 = 60, exactly the cap: not yet", true, 450_000n, "48", null],
      ["54.00012 + 6.00012 = 60.00024 > 60: cut now", true, 450_001n, "48", "credit_exhausted"],
      ["without lookahead the same meter runs on", false, 450_001n, "48", null],
      ["54 + 6.01 = 60.01 > 60: cut now", true, 450_000n, "4799/100", "credit_exhausted"],
      ["54 + 5.99 = 59.99: not yet", true, 450_000n, "4801/100", null],
      ["first reading: 30 + 30 = 60: not yet", true, 250_000n, "0", null],
      ["first reading: 30.00012 + 30.00012 > 60: cut", true, 250_001n, "0", "credit_exhausted"],
      ["no new energy: 54 + 0 stays under 60", true, 450_000n, "54", null],
      ["at the cap itself, with or without lookahead", false, 500_000n, "54", "credit_exhausted"],
    ] as const)("%s", (_, capLookahead, mwh, prevFee, expected) => {
      const meter = aMeter({ byPeriod: [[1, mwh, 10 * MIN]] });
      const arm = anArm({ target: { energyWh: 10_000 }, capCents: 60, capLookahead });
      expect(decideCutoff(arm, tariff, meter, R(prevFee))).toBe(expected);
    });
  });
});

describe("step", () => {
  const o = config();
  const armedTariff: Tariff = tariff; // what step makes of anArm().tariff

  /** The state right after arming an empty terminal at `at`. */
  function armed(arm: Arm = anArm(), at = NOW): TerminalState {
    return step(emptyState(at), { kind: "arm", arm }, at, o).state;
  }

  /** Feeds readings in order, each seen at `at`; returns the last state and the effects of each. */
  function feed(s: TerminalState, readings: Reading[], at = NOW): { state: TerminalState; effects: CutoffEffect[][] } {
    const effects: CutoffEffect[][] = [];
    for (const r of readings) {
      const res = step(s, { kind: "reading", reading: r, gatewayId: "G1", seenAt: at }, at, o);
      s = res.state;
      effects.push(res.effects);
    }
    return { state: s, effects };
  }

  describe("arm", () => {
    it("starts a meter at the arm's start point and saves it", () => {
      const arm = anArm();
      const res = step(emptyState(NOW - 5000), { kind: "arm", arm }, NOW, o);
      const meter: Meter = { sessionId: "S-1", startTs: START, startMwh: 125_000_000n, lastTs: START, lastMwh: 125_000_000n, byPeriod: new Map() };
      expect(res.state).toStrictEqual({ arm, tariff: armedTariff, meter, cutoff: null, lastSeenAt: NOW, owned: false, waitingArm: null });
      expect(res.effects).toStrictEqual([
        { kind: "save_meter", terminalId: "T1", meter, cutoff: null },
        { kind: "read_newest", terminalId: "T1" },
      ]);
    });

    it("replaces another session's meter and its cutoff", () => {
      const old: TerminalState = {
        ...emptyState(NOW - 90_000),
        meter: aMeter({ sessionId: "S-0", startTs: START - 3_600_000, byPeriod: [[0, 700_000n, 50 * MIN]] }),
        cutoff: "target_reached",
      };
      const res = step(old, { kind: "arm", arm: anArm({ startWh: 125_700.25 }) }, NOW, o);
      const meter: Meter = { sessionId: "S-1", startTs: START, startMwh: 125_700_250n, lastTs: START, lastMwh: 125_700_250n, byPeriod: new Map() };
      expect(res.state.meter).toStrictEqual(meter);
      expect(res.state.cutoff).toBeNull();
      expect(res.state.lastSeenAt).toBe(NOW);
      expect(res.effects).toStrictEqual([
        { kind: "save_meter", terminalId: "T1", meter, cutoff: null },
        { kind: "read_newest", terminalId: "T1" },
      ]);
    });

    it.each([
      ["with no cutoff yet", null],
      ["with the cutoff already asked", "target_reached"],
    ] as const)("re-arming the same session keeps a restored meter (%s)", (_, cutoff) => {
      const restored = aMeter({ byPeriod: [[0, 300_000n, 20 * MIN]] });
      const s: TerminalState = { ...emptyState(NOW - 1000), meter: restored, cutoff };
      const arm = anArm({ startWh: 999 }); // a different start point does not reset the meter
      const res = step(s, { kind: "arm", arm }, NOW, o);
      expect(res.state).toStrictEqual({ arm, tariff: armedTariff, meter: restored, cutoff, lastSeenAt: NOW - 1000, owned: false, waitingArm: null });
      expect(res.state.meter).toBe(restored);
      expect(res.effects).toStrictEqual([]);
    });
  });

  describe("readings that change nothing", () => {
    it.each([
      ["before the start", START - 1, 125_100],
      ["at the start itself", START, 125_100],
      ["repeating the last reading's time", START + 10 * MIN, 125_300],
      ["before the last reading", START + 5 * MIN, 125_250],
    ])("a reading %s", (_, ts, energyWh) => {
      const { state: s } = feed(armed(), [aReading({ ts: START + 10 * MIN, energyWh: 125_200 })]);
      const res = step(s, { kind: "reading", reading: aReading({ ts, energyWh }), gatewayId: "G1", seenAt: NOW + 7000 }, NOW + 7000, o);
      expect(res.effects).toStrictEqual([]);
      expect(res.state.meter).toBe(s.meter);
      expect(res.state.cutoff).toBeNull();
      // ...except that the terminal was heard from.
      expect(res.state.lastSeenAt).toBe(NOW + 7000);
    });

    it.each([
      ["no arm, no meter", emptyState(NOW)],
      ["a restored meter but no arm yet", { ...emptyState(NOW), meter: aMeter() }],
    ])("a reading with %s only notes that the terminal was seen", (_, s) => {
      const res = step(s, { kind: "reading", reading: aReading({ ts: START + MIN, energyWh: 125_010 }), gatewayId: "G1", seenAt: NOW + 1 }, NOW + 1, o);
      expect(res.effects).toStrictEqual([]);
      expect(res.state).toStrictEqual({ ...s, lastSeenAt: NOW + 1 });
    });

    it("lastSeenAt never goes back for a reading seen earlier (a redelivery)", () => {
      const res = step(armed(), { kind: "reading", reading: aReading({ ts: START + MIN, energyWh: 125_010 }), gatewayId: "G1", seenAt: NOW - 9000 }, NOW, o);
      expect(res.state.lastSeenAt).toBe(NOW);
    });
  });

  describe("readings accumulate", () => {
    // Power on 07:30 at 125000 Wh. Each row: the reading, then the progress expected after it.
    it.each([
      {
        name: "07:40, +100 Wh at night: 100 × 0.06 = 6 c; powerW as sent",
        reading: aReading({ ts: START + 10 * MIN, energyWh: 125_100, powerW: 3700 }),
        progress: { energyWh: 100, durationS: 600, feeCents: 6, powerW: 3700 },
        usage: { 0: ["100000", 600_000] },
      },
      {
        name: "08:10, +300 Wh over 07:40-08:10: 200 Wh night (12 c) + 100 Wh day (12 c); powerW = 230 V × 16.5 A",
        reading: aReading({ ts: T8 + 10 * MIN, energyWh: 125_400, currentA: 16.5 }),
        progress: { energyWh: 400, durationS: 2400, feeCents: 30, powerW: 3795 },
        usage: { 0: ["300000", 1_800_000], 1: ["100000", 600_000] },
      },
      {
        name: "08:10:00.999, +0.001 Wh: 30.00012 c → 30; durationS rounds down; powerW 0 is kept",
        reading: aReading({ ts: T8 + 10 * MIN + 999, energyWh: 125_400.001, powerW: 0 }),
        progress: { energyWh: 400.001, durationS: 2400, feeCents: 30, powerW: 0 },
        usage: { 0: ["300000", 1_800_000], 1: ["100001", 600_999] },
      },
      {
        name: "08:34:59.999, +12.498 Wh by day: 18 + 112.499 × 0.12 = 31.49988 c → 31",
        reading: aReading({ ts: T8 + 35 * MIN - 1, energyWh: 125_412.499, currentA: 0, voltageV: 231 }),
        progress: { energyWh: 412.499, durationS: 3899, feeCents: 31, powerW: 0 },
        usage: { 0: ["300000", 1_800_000], 1: ["112499", 2_099_999] },
      },
      {
        name: "08:35, +0.001 Wh: 18 + 112.5 × 0.12 = 31.5 c exactly, rounds half up to 32",
        reading: aReading({ ts: T8 + 35 * MIN, energyWh: 125_412.5, currentA: 10, voltageV: 0 }),
        progress: { energyWh: 412.5, durationS: 3900, feeCents: 32, powerW: 0 },
        usage: { 0: ["300000", 1_800_000], 1: ["112500", 2_100_000] },
      },
    ])("$name", ({ reading, progress, usage: expectedUsage }) => {
      // Rows build on each other: feed every row up to and including this one.
      const all = [
        aReading({ ts: START + 10 * MIN, energyWh: 125_100, powerW: 3700 }),
        aReading({ ts: T8 + 10 * MIN, energyWh: 125_400, currentA: 16.5 }),
        aReading({ ts: T8 + 10 * MIN + 999, energyWh: 125_400.001, powerW: 0 }),
        aReading({ ts: T8 + 35 * MIN - 1, energyWh: 125_412.499, currentA: 0, voltageV: 231 }),
        aReading({ ts: T8 + 35 * MIN, energyWh: 125_412.5, currentA: 10, voltageV: 0 }),
      ];
      const upto = all.slice(0, all.findIndex((r) => r.ts === reading.ts) + 1);
      const { state, effects } = feed(armed(anArm({ target: { energyWh: 2000 } })), upto, NOW + 123);
      const last = effects[effects.length - 1]!;
      expect(last).toStrictEqual([
        { kind: "save_meter", terminalId: "T1", meter: state.meter, cutoff: null },
        { kind: "progress", sessionId: "S-1", terminalId: "T1", ts: reading.ts, ...progress },
      ]);
      expect(usage(state.meter)).toStrictEqual(expectedUsage);
      expect(state.meter?.lastTs).toBe(reading.ts);
      expect(state.lastSeenAt).toBe(NOW + 123);
    });

    it("the progress fee never shows more than the cap", () => {
      // 1000 Wh by day = 120 c, capped at 100 (and cut for it).
      const { effects } = feed(armed(anArm({ startTs: T8, target: { energyWh: 5000 }, capCents: 100 })), [aReading({ ts: T8 + MIN, energyWh: 126_000 })]);
      expect(effects[0]!.find((e) => e.kind === "progress")).toMatchObject({ feeCents: 100, energyWh: 1000 });
    });
  });

  describe("cutoff", () => {
    it.each([
      // [name, arm, readings (Wh), index of the reading that cuts or -1, reason]
      ["energy: 1999.999 Wh runs on, 2000 cuts", anArm(), [126_999.999, 127_000, 127_100], 1, "target_reached"],
      ["energy: straight past the target", anArm(), [127_500, 127_600], 0, "target_reached"],
      ["energy: never reached", anArm(), [125_500, 126_999.999], -1, null],
      ["prepaid hold of 60 c at 07:30 night prices: 1000 Wh = 60 c", anArm({ target: { energyWh: 5000 }, capCents: 60 }), [125_999.999, 126_000, 126_500], 1, "credit_exhausted"],
      // Postpaid, cap 60 c at night (0.06 c/Wh): +400 Wh = 24 c, +400 more = 48 c, 48 + 24 = 72 > 60.
      ["postpaid lookahead cuts one reading early", anArm({ target: { energyWh: 5000 }, capCents: 60, capLookahead: true }), [125_400, 125_800, 126_200], 1, "credit_exhausted"],
      // +500 Wh = 30 c, +500 more = 60 c... but 30 + 30 = 60 is not past the cap, so the first runs on.
      ["postpaid lookahead at exactly the cap", anArm({ target: { energyWh: 5000 }, capCents: 60, capLookahead: true }), [125_500, 126_000], 1, "credit_exhausted"],
    ] as const)("%s", (_, arm, whs, cutAt, reason) => {
      // One reading a minute from 07:30, all at night.
      const readings = whs.map((energyWh, i) => aReading({ ts: START + (i + 1) * MIN, energyWh }));
      const { state, effects } = feed(armed(arm), readings, NOW);
      effects.forEach((fx, i) => {
        const cuts = fx.filter((e) => e.kind === "cutoff");
        const saved = fx.find((e) => e.kind === "save_meter");
        expect(saved).toBeDefined();
        expect(fx.filter((e) => e.kind === "progress")).toHaveLength(1);
        if (i === cutAt) {
          expect(cuts).toStrictEqual([
            { kind: "cutoff", cutoff: { sessionId: "S-1", terminalId: "T1", reason, ts: readings[i]!.ts, decidedAt: NOW } },
          ]);
          expect(fx[0]!.kind).toBe("cutoff"); // asked before the checkpoint that records it
        } else {
          expect(cuts).toStrictEqual([]);
        }
        // Every save after the cut carries it, so a restart does not ask again.
        expect(saved).toMatchObject({ cutoff: cutAt >= 0 && i >= cutAt ? reason : null });
      });
      expect(state.cutoff).toBe(reason);
    });

    it("a reading past the target after the cut saves the meter but asks no second cutoff", () => {
      const s0 = feed(armed(), [aReading({ ts: START + MIN, energyWh: 127_000 })]).state;
      const res = step(s0, { kind: "reading", reading: aReading({ ts: START + 2 * MIN, energyWh: 127_250 }), gatewayId: "G1", seenAt: NOW + 1 }, NOW + 1, o);
      expect(res.effects.map((e) => e.kind)).toStrictEqual(["save_meter", "progress"]);
      expect(res.effects[0]).toStrictEqual({ kind: "save_meter", terminalId: "T1", meter: res.state.meter, cutoff: "target_reached" });
      expect(res.state.meter?.lastMwh).toBe(127_250_000n);
      expect(res.effects[1]).toMatchObject({ energyWh: 2250 });
    });
  });

  describe("disarm", () => {
    it("drops the meter and forgets the session, keeping when it last heard the terminal", () => {
      const s = feed(armed(), [aReading({ ts: START + MIN, energyWh: 127_000 })], NOW + 40).state;
      const res = step(s, { kind: "disarm" }, NOW + 99_000, o);
      expect(res.state).toStrictEqual({ arm: null, tariff: null, meter: null, cutoff: null, lastSeenAt: NOW + 40, owned: false, waitingArm: null });
      expect(res.effects).toStrictEqual([{ kind: "drop_meter", terminalId: "T1" }]);
    });

    it("with no meter there is nothing to drop", () => {
      const res = step(emptyState(NOW), { kind: "disarm" }, NOW + 5, o);
      expect(res.state).toStrictEqual(emptyState(NOW));
      expect(res.effects).toStrictEqual([]);
    });
  });

  describe("tick: silence", () => {
    const L = NOW; // last seen
    const withMeter = () => feed(armed(anArm(), L - 50_000), [aReading({ ts: START + MIN, energyWh: 125_010 })], L).state;

    it.each([
      // [name, now - lastSeenAt, caughtUp, cut?]
      ["29.999 s silent", 29_999, true, false],
      ["exactly 30 s silent", 30_000, true, true],
      ["31 s silent", 31_000, true, true],
      ["30 s silent but the stream is not read to its end", 30_000, false, false],
      ["an hour silent but not caught up", 3_600_000, false, false],
      ["not silent at all", 0, true, false],
    ])("%s → cut %s", (_, silent, caughtUp, cut) => {
      const s = withMeter();
      const res = step(s, { kind: "tick", caughtUp }, L + silent, o);
      if (!cut) {
        expect(res.effects).toStrictEqual([]);
        expect(res.state).toBe(s);
        return;
      }
      const cutoff = { sessionId: "S-1", terminalId: "T1", reason: "terminal_offline", ts: START + MIN, decidedAt: L + silent };
      expect(res.effects).toStrictEqual([
        { kind: "cutoff", cutoff },
        { kind: "save_meter", terminalId: "T1", meter: s.meter, cutoff: "terminal_offline" },
      ]);
      expect(res.state).toStrictEqual({ ...s, cutoff: "terminal_offline" });
    });

    it("cuts once: the next tick asks nothing", () => {
      const first = step(withMeter(), { kind: "tick", caughtUp: true }, L + 30_000, o);
      expect(first.effects).toHaveLength(2);
      const second = step(first.state, { kind: "tick", caughtUp: true }, L + 31_000, o);
      expect(second.effects).toStrictEqual([]);
    });

    it("a session already cut for its target is not cut again for silence", () => {
      const s = feed(armed(anArm(), L), [aReading({ ts: START + MIN, energyWh: 127_000 })], L).state;
      expect(s.cutoff).toBe("target_reached");
      expect(step(s, { kind: "tick", caughtUp: true }, L + 60_000, o).effects).toStrictEqual([]);
    });

    it("a fresh arm counts as hearing from the terminal", () => {
      const s = step(emptyState(L - 120_000), { kind: "arm", arm: anArm() }, L, o).state;
      expect(step(s, { kind: "tick", caughtUp: true }, L + 29_999, o).effects).toStrictEqual([]);
      expect(step(s, { kind: "tick", caughtUp: true }, L + 30_000, o).effects.map((e) => e.kind)).toStrictEqual(["cutoff", "save_meter"]);
    });

    it.each([
      ["nothing at all", emptyState(L)],
      ["a restored meter but no arm", { ...emptyState(L), meter: aMeter() }],
    ])("without an arm (%s) silence cuts nothing", (_, s) => {
      const res = step(s, { kind: "tick", caughtUp: true }, L + 3_600_000, o);
      expect(res.effects).toStrictEqual([]);
      expect(res.state).toBe(s);
    });

    it("silenceMs is the option, not a constant", () => {
      const s = withMeter();
      expect(step(s, { kind: "tick", caughtUp: true }, L + 4_999, { ...o, silenceMs: 5000 }).effects).toStrictEqual([]);
      expect(step(s, { kind: "tick", caughtUp: true }, L + 5_000, { ...o, silenceMs: 5000 }).effects).toHaveLength(2);
    });
  });
});

describe("step: what an input may touch (ownership, gateway binding, late and repeated messages)", () => {
  const reading = (ts: number, energyWh: number, gatewayId = "G1", seenAt = NOW) => ({ kind: "reading" as const, reading: aReading({ ts, energyWh }), gatewayId, seenAt });
  const armedState = (c = config()) => step(emptyState(NOW), { kind: "arm", arm: anArm() }, NOW, c).state;
  const restore = (owner?: string) => ({ kind: "restore" as const, record: { meter: aMeter(), cutoff: null, ...(owner ? { owner } : {}) } });

  it.each([
    ["from another gateway", reading(START + MIN, 126_000, "G2")],
    ["dated more than a minute ahead of its arrival", reading(NOW + 60_001, 126_000)],
  ])("a reading %s changes nothing, not even when the terminal was last heard", (_, input) => {
    const s = armedState();
    const res = step(s, input, NOW + 5000, config());
    expect(res.effects).toStrictEqual([]);
    expect(res.state).toBe(s);
  });

  it("a reading of a terminal no longer registered changes nothing", () => {
    const s = armedState();
    expect(step(s, reading(START + MIN, 126_000), NOW + 5000, config({ info: undefined })).state).toBe(s);
  });

  it("a reading exactly a minute ahead of its arrival still counts", () => {
    const res = step(armedState(), reading(NOW + 60_000, 125_010), NOW + 1, config());
    expect(res.state.meter?.lastTs).toBe(NOW + 60_000);
  });

  it("a repeated arm of the metered session keeps the meter and looks for nothing", () => {
    const s = armedState();
    const res = step(s, { kind: "arm", arm: anArm() }, NOW + 9000, config());
    expect(res.effects).toStrictEqual([]);
    expect(res.state.meter).toBe(s.meter);
  });

  describe("partitions by lease", () => {
    it("restores a checkpoint of its own partition's terminal only", () => {
      expect(step(emptyState(NOW), restore(), NOW, config()).state).toMatchObject({ meter: aMeter(), owned: false });
      const s = emptyState(NOW);
      expect(step(s, restore(), NOW, config({ ours: false })).state).toBe(s);
    });

    it("leaves another partition's arms alone, but a session it holds still takes its disarm", () => {
      const other = config({ ours: false });
      const s = emptyState(NOW);
      expect(step(s, { kind: "arm", arm: anArm() }, NOW, other)).toStrictEqual({ state: s, effects: [] });
      expect(takesArms(undefined, other)).toBe(false);
      const held = armedState();
      expect(takesArms(held, other)).toBe(true);
      const res = step(held, { kind: "disarm" }, NOW, other);
      expect(res.effects).toStrictEqual([{ kind: "drop_meter", terminalId: "T1" }]);
      expect(res.state.meter).toBeNull();
    });
  });

  describe("the older static split", () => {
    const c = config({ partitioned: true });

    it("restores only the checkpoints its own durable wrote, and owns their terminals", () => {
      const s = emptyState(NOW);
      expect(step(s, restore("vend_cutoff_other"), NOW, c).state).toBe(s);
      expect(step(s, restore(), NOW, c).state).toBe(s);
      expect(step(s, restore("vend_cutoff"), NOW, c).state).toMatchObject({ meter: aMeter(), owned: true });
    });

    it("keeps an arm waiting until the terminal's first reading makes it its own", () => {
      const waiting = step(emptyState(NOW - 1000), { kind: "arm", arm: anArm() }, NOW, c);
      expect(waiting.effects).toStrictEqual([]);
      expect(waiting.state).toMatchObject({ arm: null, meter: null, owned: false, waitingArm: anArm() });
      expect(wants(waiting.state, c)).toBe(true);
      const res = step(waiting.state, reading(START + MIN, 125_010), NOW + 1000, c);
      // The arm first (no look-up: this reading is the newest), then the reading on its meter.
      expect(res.effects.map((e) => e.kind)).toStrictEqual(["save_meter", "save_meter", "progress"]);
      expect(res.state).toMatchObject({ owned: true, waitingArm: null, arm: anArm() });
      expect(res.state.meter?.lastTs).toBe(START + MIN);
    });

    it("a disarm before that reading leaves nothing waiting", () => {
      const waiting = step(emptyState(NOW), { kind: "arm", arm: anArm() }, NOW, c).state;
      const gone = step(waiting, { kind: "disarm" }, NOW, c).state;
      expect(gone.waitingArm).toBeNull();
      const res = step(gone, reading(START + MIN, 125_010), NOW + 1000, c);
      expect(res.effects).toStrictEqual([]);
      expect(res.state).toMatchObject({ owned: true, arm: null, meter: null });
      // Owned and idle: its readings are not even parsed any more.
      expect(wants(res.state, c)).toBe(false);
    });

    it("reads a terminal it does not know yet once, to own it; unpartitioned, only sessions are read", () => {
      expect(wants(undefined, c)).toBe(true);
      expect(wants(undefined, config())).toBe(false);
      expect(wants(armedState(), config())).toBe(true);
    });
  });
});
