/** The benchmarks' parts that the tests run: the chaos suite (its short form) and its checks. */
export { runChaos, FAULTS, INVARIANTS, type ChaosResult, type ChaosOptions, type PhaseResult } from "./chaos/scenario.ts";
export { Checker, exactFeeReaches, feeCents, type SessionRow } from "./chaos/invariants.ts";
export type { Fleet, Taken } from "./chaos/fleet.ts";
