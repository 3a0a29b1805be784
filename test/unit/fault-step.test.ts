import { describe, it, expect } from "vitest";
import type { Reading, TerminalInfo } from "../../contracts/index.ts";
import {
  type FaultProfile,
  emptyFaultState,
  faultHolds,
  faultStep,
  type FaultConfig,
  type FaultEffect,
  type FaultInput,
  type FaultState,
} from "../../processors/internal.ts";

const T0 = 1_764_000_000_000;
const OFFLINE_MS = 30_000;
/** Reading time of second i. */
const sec = (i: number) => T0 + i * 1000;

/** A healthy reading: relay on, 17 A at 230 V, no meter power. */
function aReading(override: Partial<Reading> = {}): Reading {
  return { ts: T0, seq: 1, state: "on", currentA: 17, voltageV: 230, energyWh: 1000, ...override };
}

/** The protocol defaults. */
function aProfile(override: Partial<FaultProfile> = {}): FaultProfile {
  return { onCurrentA: [16, 18], offCurrentMaxA: 0.1, voltageV: [198, 242], faultDebounceS: 2, faultClearS: 10, ...override };
}

/** T1's config: registered on G1, in service, this consumer's. */
function cfg(profile: FaultProfile = aProfile(), offlineMs = OFFLINE_MS, o: { info?: TerminalInfo | undefined; ours?: boolean } = {}): FaultConfig {
  return { terminal: { terminalId: "T1", info: "info" in o ? o.info : { ...T1, profile }, ours: o.ours ?? true, maxAheadMs: 60_000 }, profile, offlineMs };
}

const T1: TerminalInfo = { terminalId: "T1", gatewayId: "G1", franchiseeId: "F1", regionId: "R1", profile: aProfile() };

/** The reading of second i (ts = T0 + i·1000, seq and register counting up). */
function readingAt(i: number, override: Partial<Reading> = {}): Reading {
  return aReading({ ts: sec(i), seq: i + 1, energyWh: 1000 + i, ...override });
}

interface Step {
  i: number;
  r?: Partial<Reading>;
  /** The armed session; "S-1" unless given. */
  session?: string | null;
}

/** Feeds readings (platform time = reading time) and collects every effect. */
function play(steps: Step[], opts: { profile?: FaultProfile; state?: FaultState } = {}): { state: FaultState; effects: FaultEffect[] } {
  const profile = opts.profile ?? aProfile();
  let state = opts.state ?? emptyFaultState(T0);
  const effects: FaultEffect[] = [];
  for (const s of steps) {
    const input: FaultInput = { kind: "reading", gatewayId: "G1", reading: readingAt(s.i, s.r), seenAt: sec(s.i), session: s.session === undefined ? "S-1" : s.session };
    const res = faultStep(state, input, sec(s.i), cfg(profile, OFFLINE_MS));
    state = res.state;
    effects.push(...res.effects);
  }
  return { state, effects };
}

/** A pattern of one reading a second from second 0: "x" is relay on at 15 A (under-current), "." healthy. */
function pattern(p: string): Step[] {
  return [...p].map((c, i) => (c === "x" ? { i, r: { currentA: 15 } } : { i }));
}

/** "open@2" for one fault kind's effects; seconds since T0. */
const short = (e: FaultEffect) => `${e.kind}@${(e.at - T0) / 1000}`;
/** "open on_current_out_of_range@2" where several kinds are involved. */
const named = (e: FaultEffect) => `${e.kind} ${e.kind === "safety_stop" ? e.sessionId : e.fault}@${(e.at - T0) / 1000}`;

const dots = (n: number) => ".".repeat(n);

describe("faultStep: debounce, clear and repeats (on_current_out_of_range, 2 s debounce, 10 s clear)", () => {
  it.each<[name: string, pattern: string, expected: string[]]>([
    ["nothing wrong", dots(20), []],
    ["holding at 0 and 1 s does not open", "xx", []],
    ["holding at 0, 1 and 2 s opens at 2 s exactly", "xxx", ["open@2"]],
    ["a late onset opens 2 s after it", "...xxx", ["open@5"]],
    ["stopping at 1 s resets the debounce", "x.x", []],
    ["stopping at 1 s resets the debounce: the return needs its own 2 s", "x.xx", []],
    ["stopping at 1 s resets the debounce: opens 2 s after the return", "x.xxx", ["open@4"]],
    ["stopping just before the debounce resets it", "xx.xx.xx", []],
    ["further holding readings emit nothing", "x".repeat(30), ["open@2"]],
    ["gone for 9 s does not resolve", "xxx" + dots(10), ["open@2"]], // gone from 3 to 12
    ["gone for 10 s resolves", "xxx" + dots(11), ["open@2", "resolve@13"]], // gone from 3 to 13
    ["nothing more after the resolve", "xxx" + dots(30), ["open@2", "resolve@13"]],
    ["a return before 10 s is one repeat", "xxx..x", ["open@2", "repeat@5"]],
    ["a return that holds is still one repeat", "xxx..xxxxx", ["open@2", "repeat@5"]],
    ["a return at 9 s of absence is a repeat", "xxx" + dots(9) + "x", ["open@2", "repeat@12"]],
    ["a return restarts the clear timer: 9 s after it, still open", "xxx..x" + dots(10), ["open@2", "repeat@5"]], // gone 6..15
    ["a return restarts the clear timer: resolves 10 s after it", "xxx..x" + dots(11), ["open@2", "repeat@5", "resolve@16"]], // gone 6..16
    ["a return while open needs no debounce", "xxx.x", ["open@2", "repeat@4"]],
    ["flapping every other second from the start never opens", "x.".repeat(15), []],
    ["flapping every other second once open: repeats, no second open", "xxx" + ".x".repeat(10), ["open@2", ...Array.from({ length: 10 }, (_, k) => `repeat@${4 + 2 * k}`)]],
    ["flapping every 3 s once open never resolves", "xxx" + "..x".repeat(10), ["open@2", ...Array.from({ length: 10 }, (_, k) => `repeat@${5 + 3 * k}`)]],
    ["after a resolve, a new onset debounces again and opens anew", "xxx" + dots(11) + "xxx", ["open@2", "resolve@13", "open@16"]],
    ["after a resolve, a short onset does not open", "xxx" + dots(11) + "xx.", ["open@2", "resolve@13"]],
  ])("%s (%s)", (_name, p, expected) => {
    const { effects } = play(pattern(p));
    expect(effects.every((e) => e.kind !== "safety_stop" && e.fault === "on_current_out_of_range")).toBe(true);
    expect(effects.map(short)).toEqual(expected);
  });

  it("opens with the evidence of the reading that opens it", () => {
    const { effects } = play([
      { i: 0, r: { currentA: 15 } },
      { i: 1, r: { currentA: 14 } },
      { i: 2, r: { currentA: 13.5 } },
    ]);
    expect(effects).toEqual([{ kind: "open", fault: "on_current_out_of_range", at: sec(2), evidence: { currentA: 13.5, rangeA: [16, 18] } }]);
  });

  it("a repeat carries the evidence of the returning reading", () => {
    const { effects } = play([...pattern("xxx."), { i: 4, r: { currentA: 12 } }, { i: 5, r: { currentA: 11 } }]);
    expect(effects).toEqual([
      { kind: "open", fault: "on_current_out_of_range", at: sec(2), evidence: { currentA: 15, rangeA: [16, 18] } },
      { kind: "repeat", fault: "on_current_out_of_range", at: sec(4), evidence: { currentA: 12, rangeA: [16, 18] } },
    ]);
  });

  it("a resolve carries no evidence", () => {
    const { effects } = play(pattern("xxx" + dots(11)));
    expect(effects[1]).toEqual({ kind: "resolve", fault: "on_current_out_of_range", at: sec(13) });
  });

  it("debounce and clear times come from the profile", () => {
    const profile = aProfile({ faultDebounceS: 5, faultClearS: 3 });
    expect(play(pattern("xxxxx"), { profile }).effects.map(short)).toEqual([]);
    expect(play(pattern("xxxxxx" + dots(3)), { profile }).effects.map(short)).toEqual(["open@5"]); // gone 6..8
    expect(play(pattern("xxxxxx" + dots(4)), { profile }).effects.map(short)).toEqual(["open@5", "resolve@9"]);
  });

  it("a debounce of 0 opens on the first reading", () => {
    expect(play(pattern("x"), { profile: aProfile({ faultDebounceS: 0 }) }).effects.map(short)).toEqual(["open@0"]);
  });

  it("times are reading times: readings 2 s apart open on the second one", () => {
    expect(play([{ i: 0, r: { currentA: 15 } }, { i: 2, r: { currentA: 15 } }]).effects.map(short)).toEqual(["open@2"]);
  });
});

describe("faultStep: register_backwards opens at once", () => {
  it("opens on the first reading that shows it, with its evidence", () => {
    const { effects } = play([{ i: 0 }, { i: 1 }, { i: 2, r: { energyWh: 990 } }]);
    expect(effects).toEqual([{ kind: "open", fault: "register_backwards", at: sec(2), evidence: { energyWh: 990, previousWh: 1001 } }]);
  });

  it("resolves 10 s after the register goes forward again", () => {
    // Second 2 jumps back to 990; from 3 on the register climbs from 991.
    const steps: Step[] = [{ i: 0 }, { i: 1 }, { i: 2, r: { energyWh: 990 } }];
    for (let i = 3; i <= 13; i++) steps.push({ i, r: { energyWh: 988 + i } });
    expect(play(steps).effects.map(short)).toEqual(["open@2", "resolve@13"]);
  });

  it("a second jump back while open is a repeat", () => {
    const steps: Step[] = [{ i: 0 }, { i: 1, r: { energyWh: 900 } }, { i: 2, r: { energyWh: 901 } }, { i: 3, r: { energyWh: 800 } }];
    expect(play(steps).effects.map(short)).toEqual(["open@1", "repeat@3"]);
  });

  it("a meter reboot (seq restarted) does not open it", () => {
    expect(play([{ i: 0 }, { i: 1, r: { seq: 0, energyWh: 0 } }]).effects).toEqual([]);
  });
});

describe("faultStep: several kinds at once track separately", () => {
  it("open together, resolve each when its own condition is gone", () => {
    // 0..2: 15 A at 190 V; 3..: 15 A at 230 V (voltage back); 8..: 17 A at 230 V (current back).
    const steps: Step[] = [];
    for (let i = 0; i <= 3 + 20; i++) steps.push({ i, r: { currentA: i < 8 ? 15 : 17, voltageV: i < 3 ? 190 : 230 } });
    const { effects } = play(steps);
    expect(effects.map(named)).toEqual([
      "open on_current_out_of_range@2",
      "open voltage_out_of_range@2",
      "resolve voltage_out_of_range@13",
      "resolve on_current_out_of_range@18",
    ]);
    expect(effects.slice(0, 2)).toEqual([
      { kind: "open", fault: "on_current_out_of_range", at: sec(2), evidence: { currentA: 15, rangeA: [16, 18] } },
      { kind: "open", fault: "voltage_out_of_range", at: sec(2), evidence: { voltageV: 190, rangeV: [198, 242] } },
    ]);
  });

  it("staggered onsets debounce separately", () => {
    // Voltage low from 0, current low from 1; voltage gone at 3 and back at 4 (a repeat), current steady.
    const v = [190, 190, 190, 230, 190, 190];
    const steps: Step[] = v.map((voltageV, i) => ({ i, r: { voltageV, currentA: i >= 1 ? 15 : 17 } }));
    expect(play(steps).effects.map(named)).toEqual([
      "open voltage_out_of_range@2",
      "open on_current_out_of_range@3",
      "repeat voltage_out_of_range@4",
    ]);
  });

  it("relay on without a session, a leak after the relay goes off", () => {
    // 0..2: relay on with no session; 3..5: relay off leaking 1 A with no session.
    const steps: Step[] = [];
    for (let i = 0; i <= 5; i++) steps.push({ i, session: null, r: i < 3 ? {} : { state: "off", currentA: 1 } });
    expect(play(steps).effects.map(named)).toEqual(["open relay_on_without_session@2", "open off_current_leak@5"]);
  });
});

describe("faultStep: safety_stop (over 18 A during a session), once per session", () => {
  const safety = (effects: FaultEffect[]) => effects.filter((e) => e.kind === "safety_stop").map(named);

  it.each<[name: string, steps: Step[], expected: string[]]>([
    ["18.01 A in S-1", [{ i: 0, r: { currentA: 18.01 } }], ["safety_stop S-1@0"]],
    ["18 A in S-1", [{ i: 0, r: { currentA: 18 } }], []],
    ["25 A without a session", [{ i: 0, session: null, r: { currentA: 25 } }], []],
    ["25 A relay off in S-1", [{ i: 0, r: { state: "off", currentA: 25 } }], []],
    ["twice in S-1", [{ i: 0, r: { currentA: 19 } }, { i: 1, r: { currentA: 19 } }], ["safety_stop S-1@0"]],
    ["in S-1, healthy, again in S-1", [{ i: 0, r: { currentA: 19 } }, { i: 1 }, { i: 2, r: { currentA: 19 } }], ["safety_stop S-1@0"]],
    [
      "in S-1, then in S-2",
      [
        { i: 0, r: { currentA: 19 } },
        { i: 1, session: "S-2", r: { currentA: 19 } },
      ],
      ["safety_stop S-1@0", "safety_stop S-2@1"],
    ],
    [
      "without a session, then in S-1",
      [
        { i: 0, session: null, r: { currentA: 19 } },
        { i: 1, r: { currentA: 19 } },
      ],
      ["safety_stop S-1@1"],
    ],
    [
      "S-1, then S-2 twice: one per session",
      [
        { i: 0, session: "S-1", r: { currentA: 19 } },
        { i: 1, session: "S-2", r: { currentA: 19 } },
        { i: 2, session: "S-2", r: { currentA: 19 } },
      ],
      ["safety_stop S-1@0", "safety_stop S-2@1"],
    ],
  ])("%s", (_name, steps, expected) => {
    expect(safety(play(steps).effects)).toEqual(expected);
  });

  it("stops at once and opens on_current_out_of_range at once, both with the reading's evidence and time", () => {
    const { effects, state } = play([{ i: 0, r: { currentA: 18.01 } }]);
    expect(effects).toEqual([
      { kind: "safety_stop", sessionId: "S-1", at: sec(0), evidence: { currentA: 18.01, maxA: 18 } },
      { kind: "open", fault: "on_current_out_of_range", at: sec(0), evidence: { currentA: 18.01, rangeA: [16, 18] } },
    ]);
    expect(state.stoppedSession).toBe("S-1");
  });

  it("the fault opened by the stop is not opened again when the debounce completes", () => {
    const { effects } = play([0, 1, 2, 3].map((i) => ({ i, r: { currentA: 20 } })));
    expect(effects.map(named)).toEqual(["safety_stop S-1@0", "open on_current_out_of_range@0"]);
  });

  it("an over-current that completes a running debounce opens the fault once", () => {
    // Under-current at 0 and 1 s starts the debounce; 19 A at 2 s completes it and is a safety stop.
    const { effects } = play([{ i: 0, r: { currentA: 15 } }, { i: 1, r: { currentA: 15 } }, { i: 2, r: { currentA: 19 } }]);
    expect(effects).toEqual([
      { kind: "open", fault: "on_current_out_of_range", at: sec(2), evidence: { currentA: 19, rangeA: [16, 18] } },
      { kind: "safety_stop", sessionId: "S-1", at: sec(2), evidence: { currentA: 19, maxA: 18 } },
    ]);
  });

  it("over-current in a new session while the fault is open stops it without a second open", () => {
    const { effects } = play([
      { i: 0, r: { currentA: 19 } },
      { i: 1, session: "S-2", r: { currentA: 19 } },
    ]);
    expect(effects.map(named)).toEqual(["safety_stop S-1@0", "open on_current_out_of_range@0", "safety_stop S-2@1"]);
  });

  it("the fault opened by the stop resolves like any other, 10 s after the current is back in range", () => {
    const steps: Step[] = [{ i: 0, r: { currentA: 19 } }];
    for (let i = 1; i <= 11; i++) steps.push({ i });
    expect(play(steps).effects.map(named)).toEqual(["safety_stop S-1@0", "open on_current_out_of_range@0", "resolve on_current_out_of_range@11"]);
  });

  it("a second over-current in the same session, after the fault resolved, debounces and stops nothing", () => {
    const steps: Step[] = [{ i: 0, r: { currentA: 19 } }];
    for (let i = 1; i <= 11; i++) steps.push({ i });
    for (let i = 12; i <= 14; i++) steps.push({ i, r: { currentA: 19 } });
    expect(play(steps).effects.map(named)).toEqual([
      "safety_stop S-1@0",
      "open on_current_out_of_range@0",
      "resolve on_current_out_of_range@11",
      "open on_current_out_of_range@14",
    ]);
  });

  it("over-current without a session waits for the debounce and stops nothing", () => {
    const { effects } = play([0, 1, 2].map((i) => ({ i, session: null, r: { currentA: 25 } })));
    expect(effects.map(named)).toEqual(["open on_current_out_of_range@2", "open relay_on_without_session@2"]);
  });

  it("the limit comes from the profile", () => {
    const profile = aProfile({ onCurrentA: [16, 32] });
    expect(play([{ i: 0, r: { currentA: 32 } }], { profile }).effects).toEqual([]);
    expect(play([{ i: 0, r: { currentA: 32.5 } }], { profile }).effects).toEqual([
      { kind: "safety_stop", sessionId: "S-1", at: sec(0), evidence: { currentA: 32.5, maxA: 32 } },
      { kind: "open", fault: "on_current_out_of_range", at: sec(0), evidence: { currentA: 32.5, rangeA: [16, 32] } },
    ]);
  });
});

describe("faultStep: terminal_offline", () => {
  type Op = { tick: number; caughtUp?: boolean } | { read: number; seenAt?: number };
  /** Platform times are offsets from T0 in ms; the state starts last seen at T0. */
  function drive(ops: Op[]): FaultEffect[] {
    let state = emptyFaultState(T0);
    const effects: FaultEffect[] = [];
    for (const op of ops) {
      const res =
        "tick" in op
          ? faultStep(state, { kind: "tick", caughtUp: op.caughtUp ?? true }, T0 + op.tick, cfg(aProfile(), OFFLINE_MS))
          : faultStep(state, { kind: "reading", gatewayId: "G1", reading: aReading({ ts: T0 + op.read }), seenAt: T0 + (op.seenAt ?? op.read), session: "S-1" }, T0 + (op.seenAt ?? op.read), cfg(aProfile(), OFFLINE_MS));
      state = res.state;
      effects.push(...res.effects);
    }
    return effects;
  }
  const ms = (e: FaultEffect) => `${e.kind} ${e.kind === "safety_stop" ? e.sessionId : e.fault}@${e.at - T0}`;

  it.each<[name: string, ops: Op[], expected: string[]]>([
    ["silent 29.999 s", [{ tick: 29_999 }], []],
    ["silent 30 s", [{ tick: 30_000 }], ["open terminal_offline@30000"]],
    ["silent 30 s, not caught up", [{ tick: 30_000, caughtUp: false }], []],
    ["silent 60 s, not caught up, then caught up", [{ tick: 60_000, caughtUp: false }, { tick: 61_000 }], ["open terminal_offline@61000"]],
    ["opens once across ticks", [{ tick: 30_000 }, { tick: 31_000 }, { tick: 90_000 }, { tick: 600_000 }], ["open terminal_offline@30000"]],
    ["ticks below the limit, then at it", [{ tick: 1000 }, { tick: 15_000 }, { tick: 29_999 }, { tick: 30_000 }], ["open terminal_offline@30000"]],
    ["a reading moves the limit", [{ read: 10_000 }, { tick: 30_000 }, { tick: 39_999 }, { tick: 40_000 }], ["open terminal_offline@40000"]],
    ["the next reading resolves it (at the reading's time)", [{ tick: 30_000 }, { read: 35_000 }], ["open terminal_offline@30000", "resolve terminal_offline@35000"]],
    ["only the first reading resolves it", [{ tick: 30_000 }, { read: 35_000 }, { read: 36_000 }], ["open terminal_offline@30000", "resolve terminal_offline@35000"]],
    [
      "after the resolve, another 30 s of silence opens it again",
      [{ tick: 30_000 }, { read: 35_000 }, { tick: 64_999 }, { tick: 65_000 }],
      ["open terminal_offline@30000", "resolve terminal_offline@35000", "open terminal_offline@65000"],
    ],
    ["a reading with no offline fault open resolves nothing", [{ read: 1000 }, { tick: 20_000 }, { read: 25_000 }], []],
    ["last seen is platform time, not reading time", [{ read: -100_000, seenAt: 10_000 }, { tick: 30_000 }, { tick: 40_000 }], ["open terminal_offline@40000"]],
  ])("%s", (_name, ops, expected) => {
    expect(drive(ops).map(ms)).toEqual(expected);
  });

  it.each<[silentMs: number, silentForS: number]>([
    [30_000, 30],
    [30_999, 30],
    [31_000, 31],
    [3_600_000, 3600],
  ])("evidence: silent %s ms → silentForS %s", (silentMs, silentForS) => {
    expect(drive([{ tick: silentMs }])).toEqual([{ kind: "open", fault: "terminal_offline", at: T0 + silentMs, evidence: { silentForS } }]);
  });

  it("the limit is the offlineMs argument", () => {
    const s0 = emptyFaultState(T0);
    expect(faultStep(s0, { kind: "tick", caughtUp: true }, T0 + 59_999, cfg(aProfile(), 60_000)).effects).toEqual([]);
    expect(faultStep(s0, { kind: "tick", caughtUp: true }, T0 + 60_000, cfg(aProfile(), 60_000)).effects).toEqual([
      { kind: "open", fault: "terminal_offline", at: T0 + 60_000, evidence: { silentForS: 60 } },
    ]);
  });

  it("a reading that resolves it is also checked for its own conditions", () => {
    const effects = drive([{ tick: 30_000 }, { read: 35_000 }]);
    expect(effects.at(-1)).toEqual({ kind: "resolve", fault: "terminal_offline", at: T0 + 35_000 });
    let state = emptyFaultState(T0);
    state = faultStep(state, { kind: "tick", caughtUp: true }, T0 + 30_000, cfg(aProfile(), OFFLINE_MS)).state;
    const res = faultStep(state, { kind: "reading", gatewayId: "G1", reading: aReading({ ts: T0 + 35_000, currentA: 19 }), seenAt: T0 + 35_000, session: "S-1" }, T0 + 35_000, cfg(aProfile(), OFFLINE_MS));
    expect(res.effects).toEqual([
      { kind: "resolve", fault: "terminal_offline", at: T0 + 35_000 },
      { kind: "safety_stop", sessionId: "S-1", at: T0 + 35_000, evidence: { currentA: 19, maxA: 18 } },
      { kind: "open", fault: "on_current_out_of_range", at: T0 + 35_000, evidence: { currentA: 19, rangeA: [16, 18] } },
    ]);
  });

  it("BUG: a backlog reading (older than the offline open) resolves terminal_offline before it opened", () => {
    // The gateway loses its link at T0 and uploads its buffered readings at T0+40 s: the fault opens
    // at platform time T0+30 s, and the first buffered reading (ts T0+1 s) resolves it with at =
    // T0+1 s, so resolvedAt < openedAt. A resolve should never be stamped before its open.
    const effects = drive([{ tick: 30_000 }, { read: 1000, seenAt: 40_000 }]);
    const open = effects.find((e) => e.kind === "open");
    const resolve = effects.find((e) => e.kind === "resolve");
    expect(open?.at).toBe(T0 + 30_000);
    expect(resolve).toBeDefined();
    expect(resolve!.at).toBeGreaterThanOrEqual(open!.at);
  });
});

describe("faultStep: purity", () => {
  function deepFreeze<T>(o: T): T {
    if (o && typeof o === "object" && !Object.isFrozen(o)) {
      Object.freeze(o);
      for (const v of Object.values(o)) deepFreeze(v);
    }
    return o;
  }

  it("never mutates the input state or reading, and returns a new state", () => {
    const profile = deepFreeze(aProfile());
    // Every path: onset, open, hold, clear, repeat, resolve, backwards register, safety stop, offline open and resolve.
    const inputs: [FaultInput, number][] = [];
    const cur = [15, 15, 15, 15, 17, 15, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 19];
    cur.forEach((currentA, i) => inputs.push([{ kind: "reading", gatewayId: "G1", reading: readingAt(i, { currentA }), seenAt: sec(i), session: "S-1" }, sec(i)]));
    inputs.push([{ kind: "reading", gatewayId: "G1", reading: readingAt(18, { energyWh: 10 }), seenAt: sec(18), session: null }, sec(18)]);
    inputs.push([{ kind: "tick", caughtUp: true }, sec(18) + 29_000]);
    inputs.push([{ kind: "tick", caughtUp: true }, sec(18) + 30_000]);
    inputs.push([{ kind: "reading", gatewayId: "G1", reading: readingAt(60), seenAt: sec(60), session: "S-2" }, sec(60)]);

    let state = emptyFaultState(T0);
    const kinds = new Set<string>();
    for (const [input, now] of inputs) {
      deepFreeze(state);
      deepFreeze(input);
      const before = structuredClone(state);
      const inputBefore = structuredClone(input);
      const res = faultStep(state, input, now, cfg(profile, OFFLINE_MS));
      expect(state).toEqual(before);
      expect(input).toEqual(inputBefore);
      expect(res.state).not.toBe(state);
      expect(res.state.tracks).not.toBe(state.tracks);
      for (const e of res.effects) kinds.add(e.kind);
      state = res.state;
    }
    expect([...kinds].sort()).toEqual(["open", "repeat", "resolve", "safety_stop"]);
  });

  it("the same input from the same state gives the same result", () => {
    const s = play(pattern("xx")).state;
    const input: FaultInput = { kind: "reading", gatewayId: "G1", reading: readingAt(2, { currentA: 15 }), seenAt: sec(2), session: "S-1" };
    const a = faultStep(s, input, sec(2), cfg(aProfile(), OFFLINE_MS));
    const b = faultStep(s, input, sec(2), cfg(aProfile(), OFFLINE_MS));
    expect(a).toEqual(b);
    expect(a.effects.map(short)).toEqual(["open@2"]);
  });

  it("emptyFaultState starts with nothing open and last seen at the given time", () => {
    expect(emptyFaultState(T0)).toEqual({ tracks: {}, prev: null, lastSeenAt: T0, stoppedSession: null });
  });
});

describe("faultStep: what an input may touch", () => {
  const over = (gatewayId: string, seenAt = sec(0)): FaultInput => ({ kind: "reading", gatewayId, reading: readingAt(0, { currentA: 19 }), seenAt, session: "S-1" });

  it.each([
    ["from another gateway", over("G2"), cfg()],
    ["dated more than a minute ahead of its arrival", over("G1", sec(0) - 60_001), cfg()],
    ["of a terminal no longer registered", over("G1"), cfg(aProfile(), OFFLINE_MS, { info: undefined })],
  ])("a reading %s changes nothing: no safety stop, no fault, not even seen", (_, input, c) => {
    const s = emptyFaultState(T0);
    const res = faultStep(s, input, sec(0), c);
    expect(res).toStrictEqual({ state: s, effects: [] });
    expect(faultHolds(res.state)).toBe(false);
  });

  it("restores the open faults of its own partition's terminals only", () => {
    const input: FaultInput = { kind: "restore", open: ["terminal_offline", "off_current_leak"] };
    const s = emptyFaultState(T0);
    expect(faultStep(s, input, T0, cfg(aProfile(), OFFLINE_MS, { ours: false })).state).toBe(s);
    const mine = faultStep(s, input, T0, cfg()).state;
    expect(Object.keys(mine.tracks).sort()).toEqual(["off_current_leak", "terminal_offline"]);
    expect(mine.tracks.off_current_leak).toEqual({ since: null, clearSince: null, open: true, holding: true });
    expect(faultHolds(mine)).toBe(true);
  });

  it.each([
    ["in maintenance", { ...T1, status: "maintenance" as const }],
    ["retired", { ...T1, status: "retired" as const }],
    ["no longer registered", undefined],
  ])("a terminal %s is not declared offline however long it is silent", (_, info) => {
    const s = faultStep(emptyFaultState(T0), { kind: "reading", gatewayId: "G1", reading: readingAt(0, { state: "off", currentA: 0 }), seenAt: T0, session: null }, T0, cfg()).state;
    const res = faultStep(s, { kind: "tick", caughtUp: true }, T0 + 3_600_000, cfg(aProfile(), OFFLINE_MS, { info }));
    expect(res).toStrictEqual({ state: s, effects: [] });
    // Back in service, the same silence opens it.
    expect(faultStep(s, { kind: "tick", caughtUp: true }, T0 + 3_600_000, cfg()).effects.map((e) => e.kind)).toEqual(["open"]);
  });
});
