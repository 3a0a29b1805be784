/**
 * The command line's parts as a library, for the benchmarks and the tests: the platform in one
 * process, the logger, the simulator, the PostgreSQL formation and its backups, NATS authorization
 * and free ports. `main.ts` is the command itself.
 */
export { startPlatform, migrateDatabase, DEFAULT_METRICS_PORT, type Platform, type PlatformOptions } from "./platform.ts";
export { makeLogger } from "./log.ts";
export * from "./sim/index.ts";
export {
  up,
  down,
  waitHealthy,
  formationState,
  formationUrl,
  nodeUrl,
  killNode,
  restartNode,
  pgAutoctlInstalled,
  type Formation,
  type NodeState,
} from "./pg-ha.ts";
export { backup, archiveNow, restore, type BackupType, type Restored } from "./pg-backup.ts";
export * from "./nats-auth.ts";
export { writeNatsConfig, type NatsConfigOptions, type NatsConfigResult } from "./nats-config.ts";
export { freePort, freePortBlock, releasePortBlock } from "./ports.ts";
export { clusterNodeConfig } from "./local-cluster.ts";
