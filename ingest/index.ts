/** Ingest: the stream topology, the one consume loop, telemetry decoding and dead letters. */
export { ensureTopology, reservedBytes, openBuckets, streamConfigs, isNotFound, type Buckets, type StreamLimits } from "./streams.ts";
export { runConsumer, ensureConsumer, isAckLater, PULL_EXPIRES_MS, redeliveryDelay, PoisonMessageError, type AckLater, type RunningConsumer, type Decoded, type Reject, type LateReject } from "./consume.ts";
export { decodeTelemetry, validReadings, type TelemetryItem } from "./telemetry.ts";
export { deadLetterer } from "./deadletter.ts";
export { isDataError, isPermanent, permanentReason, writeIsolating, type Refused } from "./isolate.ts";
export { startWriter, type WriterOptions } from "./writer.ts";
export { maintainStorage, refreshAggregates, storageEngine, whileRefreshing, type StoragePolicy } from "./storage.ts";
export { readingsOf, type StoredReading } from "./store.ts";
export { checkReading, type Mark } from "./validate.ts";
export { startBackupSink, backedUpStreams, type BackupOptions } from "./backup.ts";
export { restoreStreams, StreamRestoreError, type StreamRestoreOptions } from "./restore.ts";
export { unavailableDependency, type Dependency } from "./outage.ts";
export { guardClient, withClient } from "./pg.ts";
export { RetryBackoff, type RetryOptions } from "./retry.ts";
export { firstOf, kvFirstOf } from "./first-of.ts";
