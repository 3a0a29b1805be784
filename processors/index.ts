/** Stream processors: pure per-terminal steps, run as stages on shared telemetry consumers. */
export { startProcessorHost, type HostOptions, type RunningProcessor, type Stage, type StageContext, type StageFactory } from "./host.ts";
export { type TerminalView } from "./terminal.ts";
export { followDirectory, type TerminalDirectory } from "./directory.ts";
export { startPartitionedProcessors, newInstanceId, type PartitionedOptions, type PartitionedProcessors } from "./partitioned.ts";
export { runPartitionLeases, type Acquired, type PartitionLeases } from "./leases.ts";
export { partitionOf, assignPartitions, partitionDurable } from "./partitions.ts";
export { startCutoffProcessor, cutoffStage, type CutoffProcessorOptions, type CutoffStageOptions } from "./cutoff/processor.ts";
export { step as cutoffStep, emptyState as emptyCutoffState, type TerminalState as CutoffState } from "./cutoff/step.ts";
export { decideCutoff } from "./cutoff/decide.ts";
export { readMeter, encodeMeterRecord, decodeMeterRecord, type MeterRecord } from "./cutoff/store.ts";
export { isOnline, readLive, type Live } from "./live.ts";
export { startFaultProcessor, faultStage, defaultFaultProfile, type FaultProcessorOptions, type FaultStageOptions } from "./faults/processor.ts";
export { faultStep, emptyFaultState, type FaultState, type FaultEffect } from "./faults/step.ts";
export { conditions as faultConditions, type FaultKind, type FaultProfile } from "./faults/rules.ts";
