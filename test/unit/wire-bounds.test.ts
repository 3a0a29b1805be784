import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  armSchema,
  batchReadingSchema,
  commandSchema,
  OutOfRangeError,
  readingSchema,
  terminalEventSchema,
  whToMwh,
  wireBounds,
} from "../../contracts/index.ts";
import { redeliveryDelay, isDataError, isPermanent } from "../../ingest/index.ts";

// What existing gateways and the simulator send (protocol examples): must stay valid.
const aReading = (o: Record<string, unknown> = {}) => ({
  ts: 1764000000000,
  seq: 1234,
  state: "on",
  currentA: 16.8,
  voltageV: 221.4,
  powerW: 3719.5,
  energyWh: 125034.2,
  sessionId: "S-1",
  ...o,
});

describe("every number of a reading is bounded", () => {
  it("the protocol's example reading passes, and so does a batch reading", () => {
    expect(readingSchema.safeParse(aReading()).success).toBe(true);
    expect(batchReadingSchema.safeParse({ terminalId: "T1", ...aReading() }).success).toBe(true);
  });

  it.each([
    ["ts", wireBounds.ts],
    ["seq", wireBounds.seq],
    ["currentA", wireBounds.currentA],
    ["voltageV", wireBounds.voltageV],
    ["powerW", wireBounds.powerW],
    ["energyWh", wireBounds.energyWh],
  ])("%s: 0 and %d pass, just above fails, and so do -1 and a fraction where a whole number is asked", (field, max) => {
    expect(readingSchema.safeParse(aReading({ [field]: 0 })).success).toBe(true);
    expect(readingSchema.safeParse(aReading({ [field]: max })).success).toBe(true);
    const above = Number.isSafeInteger(max) && max > 1e12 ? max + 1 : max * (1 + 1e-9);
    const r = readingSchema.safeParse(aReading({ [field]: above }));
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual([field]);
    expect(readingSchema.safeParse(aReading({ [field]: -1 })).success).toBe(false);
    if (field === "ts" || field === "seq") expect(readingSchema.safeParse(aReading({ [field]: 1.5 })).success).toBe(false);
  });

  it.each([1e16, 1e39, 1e306, Number.MAX_VALUE])("%s is refused in every numeric field", (huge) => {
    for (const field of ["ts", "seq", "currentA", "voltageV", "powerW", "energyWh"]) expect(readingSchema.safeParse(aReading({ [field]: huge })).success, field).toBe(false);
  });

  it("a session id with a NUL or past 128 characters is refused", () => {
    expect(readingSchema.safeParse(aReading({ sessionId: "S-\u0000" })).success).toBe(false);
    expect(readingSchema.safeParse(aReading({ sessionId: "S".repeat(129) })).success).toBe(false);
  });
});

describe("terminal events, commands and arms are bounded alike", () => {
  it.each([
    { type: "power_on_ack", sessionId: "S-1", energyWh: 1e13, ts: 1 },
    { type: "power_off_ack", sessionId: "S-1", energyWh: 1e306, ts: 1 },
    { type: "boot", energyWh: 1, ts: wireBounds.ts + 1 },
    { type: "handshake_result", sessionId: "S-1\u0000", terminalCode: "T1", match: true, ts: 1 },
    { type: "handshake_result", sessionId: "S-1", terminalCode: "x".repeat(129), match: true, ts: 1 },
  ])("refused: %o", (e) => {
    expect(terminalEventSchema.safeParse(e).success).toBe(false);
  });

  it("the protocol's example events and commands pass", () => {
    for (const e of [
      { type: "handshake_result", sessionId: "S-1", terminalCode: "T1", match: true, ts: 1764000000000 },
      { type: "power_on_ack", sessionId: "S-1", energyWh: 125000.0, ts: 1764000000500 },
      { type: "power_off_ack", sessionId: "S-1", energyWh: 125300.5, ts: 1764000360500 },
      { type: "boot", energyWh: 125300.5, ts: 1764000400000 },
    ])
      expect(terminalEventSchema.safeParse(e).success).toBe(true);
    expect(commandSchema.safeParse({ type: "power_on", cmdId: "C-2", sessionId: "S-1", limitWh: 2000, limitS: 7200 }).success).toBe(true);
    expect(commandSchema.safeParse({ type: "power_on", cmdId: "C-2", sessionId: "S-1", limitWh: wireBounds.limitWh, limitS: wireBounds.limitS }).success).toBe(true);
  });

  it("a power_on whose limits pass what a terminal holds is refused", () => {
    expect(commandSchema.safeParse({ type: "power_on", cmdId: "C-2", sessionId: "S-1", limitWh: 1e13 }).success).toBe(false);
    expect(commandSchema.safeParse({ type: "power_on", cmdId: "C-2", sessionId: "S-1", limitS: 2 ** 31 }).success).toBe(false);
  });

  it("an arm record with an out-of-range start is refused", () => {
    const arm = {
      sessionId: "S-1",
      terminalId: "T1",
      startTs: 1764000000000,
      startWh: 125000,
      target: { energyWh: 10 },
      capCents: 100,
      capLookahead: false,
      tariff: { version: 1, timezone: "UTC", periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100, timeCentsPerHour: 0 }] },
    };
    expect(armSchema.safeParse(arm).success).toBe(true);
    expect(armSchema.safeParse({ ...arm, startWh: 1e306 }).success).toBe(false);
    expect(armSchema.safeParse({ ...arm, startTs: 1e20 }).success).toBe(false);
  });
});

describe("the bounds fit exact money arithmetic", () => {
  it("every register up to the bound with 3 decimals becomes its exact mWh", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: BigInt(wireBounds.energyWh) * 1000n }), (mwh) => {
        const text = `${mwh / 1000n}.${String(mwh % 1000n).padStart(3, "0")}`;
        expect(whToMwh(Number(text))).toBe(mwh);
      }),
      { numRuns: 5000 },
    );
  });

  it("past exact arithmetic, whToMwh throws a typed error a caller can dead-letter", () => {
    for (const wh of [1e13 * 1000, 1e306, Infinity, NaN]) expect(() => whToMwh(wh)).toThrow(OutOfRangeError);
  });
});

describe("redelivery backs off", () => {
  it.each([
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [4, 8000],
    [50, 8000],
  ])("delivery %d waits %d ms", (n, ms) => {
    expect(redeliveryDelay(1000, n)).toBe(ms);
  });
});

describe("whatever a gateway sends, an accepted reading fits the columns and the money code", () => {
  // Hostile numbers: huge, tiny, negative, fractional, the edges of the bounds and of doubles.
  const hostile = fc.oneof(
    fc.double({ noNaN: false }),
    fc.constantFrom(0, -0, 1e-50, 5e-324, 1e16, 1e39, 1e306, Number.MAX_VALUE, Number.MAX_SAFE_INTEGER, 2 ** 53, 2 ** 63, wireBounds.energyWh, wireBounds.ts),
    fc.integer(),
    fc.string({ maxLength: 4 }),
    fc.constant(null),
  );
  const aHostileReading = fc.record({
    ts: fc.oneof(hostile, fc.integer({ min: 0, max: wireBounds.ts })),
    seq: hostile,
    state: fc.constantFrom("on", "off", "maybe"),
    currentA: hostile,
    voltageV: hostile,
    powerW: fc.option(hostile, { nil: undefined }),
    energyWh: hostile,
  });
  const REAL_MAX = 3.4028234663852886e38;
  const BIGINT_MAX = 2n ** 63n - 1n;

  it("is refused by the schema, or every value is in range", () => {
    fc.assert(
      fc.property(aHostileReading, (raw) => {
        const r = readingSchema.safeParse(JSON.parse(JSON.stringify(raw)));
        if (!r.success) return;
        const x = r.data;
        for (const v of [x.currentA, x.voltageV, x.powerW ?? x.currentA * x.voltageV]) expect(Number.isFinite(v) && v >= 0 && v <= REAL_MAX).toBe(true);
        expect(Number.isSafeInteger(x.seq) && BigInt(x.seq) <= BIGINT_MAX).toBe(true);
        expect(Number.isSafeInteger(x.ts)).toBe(true);
        expect(new Date(x.ts).getUTCFullYear()).toBeLessThanOrEqual(9999);
        const mwh = whToMwh(x.energyWh); // would throw past exact arithmetic
        expect(mwh >= 0n && mwh <= BIGINT_MAX).toBe(true);
      }),
      { numRuns: 20_000 },
    );
  });
});

describe("which failures are the message's own (dead-lettered) and which are transient (retried)", () => {
  const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { code });
  it.each([
    ["22003 numeric value out of range", pgError("22003"), true],
    ["22021 NUL in text", pgError("22021"), true],
    ["22P02 invalid text representation", pgError("22P02"), true],
    ["23514 check violation", pgError("23514"), true],
    ["23502 not null violation", pgError("23502"), true],
    ["23505 unique violation (another row may settle it)", pgError("23505"), false],
    ["23503 foreign key violation", pgError("23503"), false],
    ["08006 connection failure", pgError("08006"), false],
    ["57P01 admin shutdown", pgError("57P01"), false],
    ["40001 serialization failure", pgError("40001"), false],
    ["ECONNREFUSED", pgError("ECONNREFUSED"), false],
    ["a lost connection without a code", new Error("Connection terminated unexpectedly"), false],
    ["a data error wrapped as the cause", new Error("unavailable", { cause: pgError("22003") }), true],
  ])("%s: %s", (_, e, data) => {
    expect(isDataError(e)).toBe(data);
    expect(isPermanent(e)).toBe(data);
  });

  it("the billing code's OutOfRangeError is permanent; a plain error is not", () => {
    expect(isPermanent(new OutOfRangeError("x"))).toBe(true);
    expect(isPermanent(new RangeError("x"))).toBe(false);
  });
});

describe("text from outside is text PostgreSQL can store, in a column and in jsonb", () => {
  it("refuses NUL and lone surrogates, keeps every well-formed string (emoji, CJK)", async () => {
    const { textSchema } = await import("../../contracts/index.ts");
    const t = textSchema(1, 50);
    for (const bad of ["a\u0000b", "a\uD800b", "\uDC00", "x\uDBFF"]) expect(t.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    for (const good of ["😀 charge", "充电桩 A-1", "plain"]) expect(t.safeParse(good).success, good).toBe(true);
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }), (s) => {
        expect(t.safeParse(s).success).toBe(!s.includes("\u0000"));
      }),
    );
  });
});
