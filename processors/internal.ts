/**
 * The processors' internals that the tests reach (nats.js's `internal_mod.ts`): only `test/`
 * imports this entry; every other folder imports `index.ts`.
 */
export * from "./index.ts";
export { step, emptyState, dueAt, wants, takesArms, cutoffLogic, type CutoffConfig, type CutoffEffect, type CutoffInput, type TerminalState } from "./cutoff/step.ts";
export { beginUnit, type Held, type StepLogic, type Tick, type Unit } from "./unit.ts";
export { answersLive, refusal } from "./terminal.ts";
export { Deadlines } from "./deadlines.ts";
export { conditions, overCurrent, restorableKinds, type Evidence } from "./faults/rules.ts";
export { faultDueAt, faultHolds, faultLogic, type FaultConfig, type FaultInput } from "./faults/step.ts";
export { followBucket } from "./follow.ts";
export { meterMessageOf } from "./cutoff/processor.ts";
export { checkpointWriter, type CheckpointWriter } from "./cutoff/checkpoints.ts";
