import { describe, expect, it } from "vitest";
import type { TerminalInfo } from "../../contracts/index.ts";
import { answersLive, refusal, type TerminalView } from "../../processors/internal.ts";

// The host's view of a terminal, with which the steps decide what may touch its state.
const info: TerminalInfo = {
  terminalId: "T1",
  gatewayId: "G1",
  franchiseeId: "F1",
  regionId: "R1",
  profile: { onCurrentA: [16, 18], offCurrentMaxA: 0.1, voltageV: [198, 242], faultDebounceS: 2, faultClearS: 10 },
};
const view = (o: Partial<TerminalView> = {}): TerminalView => ({ terminalId: "T1", info, ours: true, maxAheadMs: 60_000, ...o });
const SEEN = 1_795_478_400_000;

describe("refusal: whether a reading may touch a terminal's state", () => {
  it.each([
    ["from the registered gateway, dated at its arrival", view(), "G1", SEEN, null],
    ["dated exactly the limit ahead", view(), "G1", SEEN + 60_000, null],
    ["dated long before its arrival (a backlog)", view(), "G1", SEEN - 86_400_000, null],
    ["dated a millisecond past the limit", view(), "G1", SEEN + 60_001, "future_ts"],
    ["from another gateway", view(), "G2", SEEN, "wrong_gateway"],
    ["of a terminal not registered", view({ info: undefined }), "G1", SEEN, "unknown_terminal"],
    ["with a tighter limit", view({ maxAheadMs: 1000 }), "G1", SEEN + 1001, "future_ts"],
  ] as const)("a reading %s", (_, v, gatewayId, ts, expected) => {
    expect(refusal(v, gatewayId, ts, SEEN)).toBe(expected);
  });
});

describe("answersLive: one answer to a live query", () => {
  it.each([
    ["its partition's terminal", view(), false, false, true],
    ["another partition's terminal", view({ ours: false }), false, true, false],
    ["static split, a terminal it heard", view(), true, true, true],
    ["static split, a terminal it never heard (another filter's)", view(), true, false, false],
  ] as const)("%s", (_, v, partitioned, heard, expected) => {
    expect(answersLive(v, partitioned, heard)).toBe(expected);
  });
});
