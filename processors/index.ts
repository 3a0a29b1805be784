/** Stream processors: pure per-terminal steps with thin NATS adapters. */
export { startCutoffProcessor, type CutoffProcessorOptions, type RunningProcessor } from "./cutoff/processor.ts";
export { step as cutoffStep, emptyState as emptyCutoffState, type TerminalState as CutoffState } from "./cutoff/step.ts";
export { decideCutoff } from "./cutoff/decide.ts";
export { readMeter, encodeMeterRecord, decodeMeterRecord, type MeterRecord } from "./cutoff/store.ts";
export { readLive, type Live } from "./live.ts";
export { startFaultProcessor, defaultFaultProfile, type FaultProcessorOptions } from "./faults/processor.ts";
export { faultStep, emptyFaultState, type FaultState, type FaultEffect } from "./faults/step.ts";
export { conditions as faultConditions, type FaultKind, type FaultProfile } from "./faults/rules.ts";
