/**
 * The processors' internals that the tests reach (nats.js's `internal_mod.ts`): only `test/`
 * imports this entry; every other folder imports `index.ts`.
 */
export * from "./index.ts";
export { step, emptyState, type CutoffEffect, type TerminalState } from "./cutoff/step.ts";
export { beginUnit, type HeldStates } from "./cutoff/unit.ts";
export { Deadlines } from "./deadlines.ts";
export { conditions, overCurrent, type Evidence } from "./faults/rules.ts";
export { type FaultInput } from "./faults/step.ts";
export { followBucket } from "./follow.ts";
export { meterMessageOf } from "./cutoff/processor.ts";
