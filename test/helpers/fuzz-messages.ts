import fc from "fast-check";
import { readingSchema, terminalEventSchema } from "../../contracts/index.ts";

/**
 * Malformed telemetry and terminal-event messages for the message fuzz run
 * (test/integration/fuzz-messages.test.ts), each with the dead letters it must cause.
 */

/** What a dead letter's reason says, coarsely: the classes the test counts. */
export type LetterClass = "not_json" | "invalid" | "future_ts" | "unknown_terminal" | "wrong_gateway" | "register_backwards" | "bad_subject";

export function classOf(reason: string): LetterClass | "other" {
  if (/not JSON/i.test(reason)) return "not_json";
  if (/ahead of the platform clock/.test(reason)) return "future_ts";
  if (/is not registered/.test(reason)) return "unknown_terminal";
  if (/is registered on gateway/.test(reason)) return "wrong_gateway";
  if (/below the previous|backwards/.test(reason)) return "register_backwards";
  if (/subject/.test(reason)) return "bad_subject";
  return reason.length > 0 ? "invalid" : "other";
}

export interface FuzzMessage {
  /** What was generated, for the figures (`tel.bounds`, `telb.mixed`, `evt.schema`, ...). */
  kind: string;
  /** The subject after the prefix (`tel.G1.F1`). */
  subject: string;
  data: Uint8Array;
  /** The dead letters it must cause: the subject each names, and the class of its reason. */
  letters: { subject: string; class: LetterClass }[];
  /** Valid readings it carries, which must be stored. */
  legit: { terminalId: string; ts: number }[];
  /** Malformed as a whole or in part (the run sends at least FUZZ_MESSAGES of these). */
  malformed: boolean;
}

/** The fleet the messages are aimed at (registered by the test before they are sent). */
export const fleet = {
  /** Registered on G1; get only hostile readings that every check must refuse. */
  hostile: ["F1", "F3"],
  /** Registered on G1; gets pairs of a good reading and one whose register went backwards. */
  backwards: "F2",
  /** Registered on G1; valid single readings interleaved with the fuzz. */
  legitSingles: "L1",
  /** Registered on G1; valid readings inside batches with bad ones. */
  legitInBatches: "L2",
  /** Registered on G1 and charging a real session while the fuzz runs. */
  session: "T1",
  /** A registered gateway that is not the gateway of any terminal above. */
  otherGateway: "G2",
} as const;

/** What building a message needs: the clock, and counters that keep valid readings distinct. */
export interface BuildContext {
  now: number;
  /** The session terminal's newest register, to aim spoofed readings just above it. */
  sessionRegisterWh: number;
  next(terminalId: string): { ts: number; seq: number; energyWh: number };
}

/** Per-terminal counters for valid readings: increasing ts, seq and register, all in the past. */
export function buildContext(now: number, sessionRegisterWh: number): BuildContext {
  const n = new Map<string, number>();
  const start = now - 3 * 3_600_000;
  return {
    now,
    sessionRegisterWh,
    next(t) {
      const i = (n.get(t) ?? 0) + 1;
      n.set(t, i);
      return { ts: start + i * 1000, seq: i, energyWh: 1000 + i * 2 };
    },
  };
}

type Template = (ctx: BuildContext) => FuzzMessage;

const enc = new TextEncoder();
const json = (x: unknown) => enc.encode(JSON.stringify(x));

/** A reading of no terminal in particular, valid in every field. */
const validReading = (ctx: BuildContext, o: Record<string, unknown> = {}) => ({
  ts: ctx.now - 3_600_000,
  seq: 7,
  state: "on",
  currentA: 16.5,
  voltageV: 221,
  powerW: 3646.5,
  energyWh: 5000,
  ...o,
});

/** Bytes that are not JSON at all. */
const notJson: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constantFrom("", " ", "{", '{"ts":', "[1,2", "NaN", "undefined", "{'ts': 1}", '{"a":1}{"b":2}', "\u0000\u0000", "ts=1&seq=2", "1e999e1").map((s) => enc.encode(s)),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).filter((b) => {
    try {
      JSON.parse(new TextDecoder().decode(b));
      return false;
    } catch {
      return true;
    }
  }),
);

/** A value of the wrong kind for any field of a reading or an event. */
const wrongValue = fc.constantFrom<unknown>(null, true, "16.5", "NaN", "Infinity", "-Infinity", [], {}, [1], -1, -0.001, 1.5, "", "\u0000", "x".repeat(300));

const readingFields = ["ts", "seq", "state", "currentA", "voltageV", "powerW", "energyWh", "sessionId"] as const;

/**
 * A reading that fails its schema: one field wrong, one required field missing, or not an object.
 * Wrong by the schema of today, so wrong by any stricter one.
 */
const schemaBadReading: fc.Arbitrary<(ctx: BuildContext) => unknown> = fc.oneof(
  fc.tuple(fc.constantFrom(...readingFields), wrongValue).map(([field, v]) => (ctx: BuildContext) => {
    const r = validReading(ctx, { [field]: v });
    // A wrong value that happens to be right for the field (1.5 A) is replaced by one that is not.
    return readingSchema.safeParse(r).success ? { ...r, [field]: {} } : r;
  }),
  fc.constantFrom("ts", "seq", "state", "currentA", "voltageV", "energyWh").map((field) => (ctx: BuildContext) => {
    const r: Record<string, unknown> = validReading(ctx);
    delete r[field];
    return r;
  }),
  fc.constantFrom<unknown>(null, 42, "reading", [], [validReading({ now: 0 } as BuildContext)], true).map((v) => () => v),
  fc.constantFrom(0.5, 1e15 + 0.5).map((ts) => (ctx: BuildContext) => validReading(ctx, { ts })),
  fc.constant((ctx: BuildContext) => validReading(ctx, { state: "ON" })),
  fc.constant((ctx: BuildContext) => validReading(ctx, { sessionId: "S".repeat(129) })),
);

/**
 * A reading of the right types whose numbers no meter reports: beyond the bounds of
 * contracts/bounds.ts (energyWh 10^12, currentA 1000, voltageV 2000, powerW 2·10^6, seq 2^53 − 1).
 */
const outOfBounds: fc.Arbitrary<Record<string, number | string>> = fc.oneof(
  fc.constantFrom(1e12 + 1, 1e13, 1e16, 1e20, 1e306, Number.MAX_VALUE).map((energyWh) => ({ energyWh })),
  fc.constantFrom(1000.5, 1e6, 1e38, 1e300).map((currentA) => ({ currentA })),
  fc.constantFrom(2000.5, 1e9, 1e300).map((voltageV) => ({ voltageV })),
  fc.constantFrom(2e6 + 1, 1e20, 1e308).map((powerW) => ({ powerW })),
  fc.constantFrom(2 ** 53, 2 ** 60, 1e300).map((seq) => ({ seq })),
  fc.constantFrom(1e-50, 5e-324).map((currentA) => ({ currentA, energyWh: 1e15 })),
  // Text PostgreSQL cannot hold.
  fc.constantFrom("S\u0000", "\u0000").map((sessionId) => ({ sessionId })),
);

/** Subject tokens that are not ids (protocol: `^[A-Za-z0-9_-]{1,64}$`) yet can be published. */
const badToken = fc.constantFrom("T%1", "Tü", "T+1", "T~1", "T:1", "T@1", "T#1", "T$1", "T!1", "😀", "x".repeat(65), "T\\1", "T'1", 'T"1');

function single(kind: string, terminal: string, payload: (ctx: BuildContext) => Uint8Array, cls: LetterClass, gw = "G1"): Template {
  return (ctx) => {
    const subject = `tel.${gw}.${terminal}`;
    return { kind, subject, data: payload(ctx), letters: [{ subject, class: cls }], legit: [], malformed: true };
  };
}

/** One part of a batch: the object, the letter it must cause (if any) and the valid reading it is (if any). */
type Part = (ctx: BuildContext) => { raw: unknown; letter?: LetterClass; legit?: { terminalId: string; ts: number } };

const partArb: fc.Arbitrary<Part> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constant<Part>((ctx) => {
      const v = ctx.next(fleet.legitInBatches);
      return { raw: { terminalId: fleet.legitInBatches, ...validReading(ctx, v) }, legit: { terminalId: fleet.legitInBatches, ts: v.ts } };
    }),
  },
  { weight: 2, arbitrary: schemaBadReading.map((r): Part => (ctx) => ({ raw: { terminalId: "F1", ...(r(ctx) as object) }, letter: "invalid" })) },
  {
    weight: 2,
    arbitrary: fc.tuple(outOfBounds, fc.constantFrom(...fleet.hostile)).map(([o, t]): Part => (ctx) => ({ raw: { terminalId: t, ...validReading(ctx, o) }, letter: "invalid" })),
  },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, 7, "r", [], { terminalId: 5 }, { terminalId: "L2.x" }, { terminalId: "" }).map((raw): Part => () => ({ raw, letter: "invalid" })) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 900_000, max: 365 * 86_400_000 }).map((ahead): Part => (ctx) => ({ raw: { terminalId: "F3", ...validReading(ctx, { ts: ctx.now + ahead }) }, letter: "future_ts" })),
  },
  { weight: 1, arbitrary: fc.stringMatching(/^Z[A-Za-z0-9_-]{1,20}$/).map((id): Part => (ctx) => ({ raw: { terminalId: id, ...validReading(ctx) }, letter: "unknown_terminal" })) },
);

/** Every kind of message the run sends, each with its weight. */
export function messageArb(): fc.Arbitrary<Template> {
  const kinds: { weight: number; arbitrary: fc.Arbitrary<Template> }[] = [
    // Single readings.
    { weight: 7, arbitrary: notJson.map((b) => single("tel.not_json", "F1", () => b, "not_json")) },
    { weight: 10, arbitrary: schemaBadReading.map((r) => single("tel.schema", "F1", (ctx) => json(r(ctx)), "invalid")) },
    {
      weight: 8,
      arbitrary: fc.tuple(outOfBounds, fc.constantFrom(...fleet.hostile)).map(([o, t]) => single("tel.bounds", t, (ctx) => json(validReading(ctx, o)), "invalid")),
    },
    { weight: 4, arbitrary: fc.integer({ min: 900_000, max: 365 * 86_400_000 }).map((ahead) => single("tel.future", "F3", (ctx) => json(validReading(ctx, { ts: ctx.now + ahead })), "future_ts")) },
    { weight: 5, arbitrary: fc.stringMatching(/^Z[A-Za-z0-9_-]{1,20}$/).map((t) => single("tel.unknown_terminal", t, (ctx) => json(validReading(ctx)), "unknown_terminal")) },
    {
      // The session's terminal spoken for by another gateway: a register 50 kWh ahead and a current
      // past the safety limit, dated now (issue 11, hole 1).
      weight: 6,
      arbitrary: fc.tuple(fc.constantFrom(fleet.otherGateway, "G9"), fc.constantFrom(fleet.session, fleet.legitSingles), fc.boolean()).map(([gw, t, surge]) =>
        single("tel.wrong_gateway", t, (ctx) => json(validReading(ctx, { ts: ctx.now, seq: 1, energyWh: ctx.sessionRegisterWh + 50_000, currentA: surge ? 30 : 16.5, state: "on" })), "wrong_gateway", gw),
      ),
    },
    {
      weight: 4,
      arbitrary: fc.tuple(badToken, fc.boolean()).map(([tok, inGateway]) => (ctx: BuildContext) => {
        const subject = inGateway ? `tel.${tok}.F1` : `tel.G1.${tok}`;
        return { kind: "tel.bad_subject", subject, data: json(validReading(ctx)), letters: [{ subject, class: "bad_subject" as const }], legit: [], malformed: true };
      }),
    },
    // Batches.
    { weight: 3, arbitrary: notJson.map((b) => (): FuzzMessage => ({ kind: "telb.not_json", subject: "telb.G1", data: b, letters: [{ subject: "telb.G1", class: "not_json" }], legit: [], malformed: true })) },
    {
      weight: 3,
      arbitrary: fc
        .constantFrom<unknown>({}, { readings: [] }, { readings: "x" }, { readings: {} }, null, [], { readings: null }, { reading: [{}] }, "big")
        .map((env) => (): FuzzMessage => ({
          kind: "telb.envelope",
          subject: "telb.G1",
          data: json(env === "big" ? { readings: Array.from({ length: 10_001 }, () => ({})) } : env),
          letters: [{ subject: "telb.G1", class: "invalid" }],
          legit: [],
          malformed: true,
        })),
    },
    {
      weight: 10,
      arbitrary: fc.array(partArb, { minLength: 1, maxLength: 8 }).map((parts) => (ctx: BuildContext): FuzzMessage => {
        let built = parts.map((p) => p(ctx));
        // At least one bad part: a batch of valid readings only is not malformed.
        if (built.every((b) => !b.letter)) built = [...built, { raw: { terminalId: "F1", ...validReading(ctx, { currentA: -1 }) }, letter: "invalid" }];
        return {
          kind: "telb.mixed",
          subject: "telb.G1",
          data: json({ readings: built.map((b) => b.raw) }),
          letters: built.filter((b) => b.letter).map((b) => ({ subject: "telb.G1", class: b.letter! })),
          legit: built.flatMap((b) => (b.legit ? [b.legit] : [])),
          malformed: true,
        };
      }),
    },
    {
      weight: 3,
      arbitrary: fc.integer({ min: 1, max: 500 }).map((drop) => (ctx: BuildContext): FuzzMessage => {
        const t = fleet.backwards;
        const good = ctx.next(t);
        const bad = ctx.next(t);
        return {
          kind: "telb.register_backwards",
          subject: "telb.G1",
          data: json({
            readings: [
              { terminalId: t, ...validReading(ctx, good) },
              { terminalId: t, ...validReading(ctx, { ...bad, energyWh: good.energyWh - drop / 100 }) },
            ],
          }),
          letters: [{ subject: "telb.G1", class: "register_backwards" }],
          legit: [{ terminalId: t, ts: good.ts }],
          malformed: true,
        };
      }),
    },
    {
      weight: 3,
      arbitrary: fc.array(fc.constantFrom(fleet.session, fleet.legitSingles, fleet.legitInBatches), { minLength: 1, maxLength: 5 }).map((ts) => (ctx: BuildContext): FuzzMessage => {
        const subject = `telb.${fleet.otherGateway}`;
        return {
          kind: "telb.wrong_gateway",
          subject,
          data: json({ readings: ts.map((t) => ({ terminalId: t, ...validReading(ctx, { ts: ctx.now, energyWh: ctx.sessionRegisterWh + 50_000, currentA: 30 }) })) }),
          letters: ts.map(() => ({ subject, class: "wrong_gateway" as const })),
          legit: [],
          malformed: true,
        };
      }),
    },
    // Terminal events.
    { weight: 5, arbitrary: notJson.map((b) => event("evt.not_json", "F1", () => b, "not_json")) },
    { weight: 8, arbitrary: badEvent.map((e) => event("evt.schema", "F1", (ctx) => json(e(ctx)), "invalid")) },
    { weight: 5, arbitrary: outOfBoundsEvent.map((e) => event("evt.bounds", "F1", (ctx) => json(e(ctx)), "invalid")) },
    { weight: 3, arbitrary: badToken.map((tok) => event("evt.bad_subject", tok, (ctx) => json({ type: "boot", energyWh: 5, ts: ctx.now }), "bad_subject")) },
  ];
  return fc.oneof(...kinds);
}

function event(kind: string, terminal: string, payload: (ctx: BuildContext) => Uint8Array, cls: LetterClass): Template {
  return (ctx) => {
    const subject = `evt.G1.${terminal}`;
    return { kind, subject, data: payload(ctx), letters: [{ subject, class: cls }], legit: [], malformed: true };
  };
}

const eventTypes = ["handshake_result", "power_on_ack", "power_off_ack", "boot"] as const;
const validEvent = (ctx: BuildContext, type: (typeof eventTypes)[number]) =>
  type === "handshake_result"
    ? { type, sessionId: "S-fuzz", terminalCode: "F1", match: true, ts: ctx.now }
    : type === "boot"
      ? { type, energyWh: 5000, ts: ctx.now }
      : { type, sessionId: "S-fuzz", energyWh: 5000, ts: ctx.now };

/** An event that fails its schema: an unknown type, a field of the wrong kind, or one missing. */
const badEvent: fc.Arbitrary<(ctx: BuildContext) => unknown> = fc.oneof(
  fc.constantFrom<unknown>("power_on", "POWER_ON_ACK", "", null, 3, "card_swipe_x").map((type) => (ctx: BuildContext) => ({ ...validEvent(ctx, "power_on_ack"), type })),
  fc.tuple(fc.constantFrom(...eventTypes), fc.constantFrom("sessionId", "energyWh", "ts", "match", "terminalCode"), wrongValue).map(
    ([type, field, v]) =>
      (ctx: BuildContext) => {
        const e: Record<string, unknown> = validEvent(ctx, type);
        // A field the type does not have is removed instead (unknown fields are dropped, not refused).
        if (!(field in e)) delete e.ts;
        else e[field] = v;
        // A wrong value that happens to be right for the field is replaced by one that is not.
        if (terminalEventSchema.safeParse(e).success) e[field] = {};
        return e;
      },
  ),
  fc.constantFrom(...eventTypes).map((type) => (ctx: BuildContext) => {
    const e: Record<string, unknown> = validEvent(ctx, type);
    delete e.ts;
    return e;
  }),
  fc.constantFrom<unknown>(null, [], "boot", 1).map((v) => () => v),
);

/**
 * Events of the right types whose values the platform cannot hold: a register or a time beyond the
 * wire bounds, a session id longer than 128 characters or carrying NUL.
 */
const outOfBoundsEvent: fc.Arbitrary<(ctx: BuildContext) => unknown> = fc.oneof(
  fc.tuple(fc.constantFrom("power_on_ack", "power_off_ack", "boot" as const), fc.constantFrom(1e12 + 1, 1e16, 1e306)).map(([type, energyWh]) => (ctx: BuildContext) => ({ ...validEvent(ctx, type), energyWh })),
  fc.constantFrom(...eventTypes).map((type) => (ctx: BuildContext) => ({ ...validEvent(ctx, type), ts: 1e16 })),
  fc.constantFrom("S\u0000", "S-\u0000-1", "S".repeat(129), "S".repeat(10_000)).map((sessionId) => (ctx: BuildContext) => ({ ...validEvent(ctx, "power_off_ack"), sessionId })),
  fc.constantFrom("F\u0000", "F".repeat(129)).map((terminalCode) => (ctx: BuildContext) => ({ ...validEvent(ctx, "handshake_result"), terminalCode })),
);

/** A valid single reading of the legit-singles terminal (interleaved with the fuzz). */
export function legitSingle(ctx: BuildContext): FuzzMessage {
  const t = fleet.legitSingles;
  const v = ctx.next(t);
  return { kind: "tel.legit", subject: `tel.G1.${t}`, data: json(validReading(ctx, v)), letters: [], legit: [{ terminalId: t, ts: v.ts }], malformed: false };
}

/** A valid event for a session nobody has: ignored (logged), never dead-lettered, never a crash. */
export function strayEvent(ctx: BuildContext, i: number): FuzzMessage {
  const type = eventTypes[i % eventTypes.length]!;
  return { kind: "evt.unknown_session", subject: `evt.G1.F1`, data: json({ ...validEvent(ctx, type), sessionId: `S-stray-${i}` }), letters: [], legit: [], malformed: false };
}
