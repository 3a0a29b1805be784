/** Stream processors: pure per-terminal steps with thin NATS adapters. */
export { startCutoffProcessor, type CutoffProcessorOptions, type RunningProcessor } from "./cutoff/processor.ts";
export { step as cutoffStep, emptyState as emptyCutoffState, type TerminalState as CutoffState } from "./cutoff/step.ts";
export { decideCutoff } from "./cutoff/decide.ts";
export { readMeter, encodeMeterRecord, decodeMeterRecord, type MeterRecord } from "./cutoff/store.ts";
export { readLive, type Live } from "./live.ts";
