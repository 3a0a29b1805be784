import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { makeLogger } from "./log.ts";
import { natsServers, subjects as makeSubjects, type Config, type Subjects } from "../contracts/index.ts";
import { createPool, createReadPool, newRegistry, primaryResolver, startControl, startOpsServer, waitForPrimary, type Db, type RunningControl } from "../control/index.ts";
import { ensureTopology, startBackupSink, startWriter, type Buckets } from "../ingest/index.ts";
import { cutoffStage, faultStage, startPartitionedProcessors, type RunningProcessor, type StageFactory } from "../processors/index.ts";
import { migrate } from "../sql/index.ts";
import { processMetrics } from "./process-metrics.ts";

export interface PlatformOptions {
  clock?: () => number;
  log?: Logger;
  /** Which parts run in this process; all by default (`npm start`). */
  parts?: { control?: boolean; cutoff?: boolean; faults?: boolean; writer?: boolean; backup?: boolean };
  /** Told each step of a start that can take a while (migrations one by one, the streams), for a person watching. */
  progress?: (step: string) => void;
}

export interface Platform {
  config: Config;
  nc: NatsConnection;
  db: Db;
  subjects: Subjects;
  buckets: Buckets;
  log: Logger;
  control: RunningControl | null;
  writer: { stop(): Promise<void> } | null;
  /** The stream processors (cutoff, faults); replaceable, so that a test can crash and restart them. */
  processors: RunningProcessor | null;
  /** Starts this process's stream processors again on its connection (after a stop of the running ones). */
  startProcessors(): Promise<RunningProcessor>;
  url: string;
  /** Where this process serves `/metrics`, `/healthz` and `/readyz`: its ops port, else the control service's. */
  opsUrl: string;
  stop(): Promise<void>;
}

/** The ops port of a process without the control part when METRICS_PORT is unset (Prometheus exporters' usual range). */
export const DEFAULT_METRICS_PORT = 9464;

/** Migrates, creates the NATS topology, and starts the processors and the control service. */
/**
 * The migrations as `npm start` and `npm run db:migrate` both apply them: on the primary among
 * DATABASE_URL's hosts, on the storage path VEND_STORAGE chooses.
 */
export async function migrateDatabase(config: Config, log: (m: string) => void, resolver = primaryResolver(config.DATABASE_URL)): Promise<number[]> {
  return migrate(await waitForPrimary(resolver), log, config.VEND_STORAGE);
}

export async function startPlatform(config: Config, o: PlatformOptions = {}): Promise<Platform> {
  const log = o.log ?? makeLogger(config.LOG_LEVEL);
  const clock = o.clock ?? Date.now;
  const parts = { control: true, cutoff: true, faults: true, writer: true, backup: true, ...o.parts };
  const resolver = primaryResolver(config.DATABASE_URL);
  await migrateDatabase(
    config,
    (m) => {
      log.info(m);
      o.progress?.(`database: ${m}`);
    },
    resolver,
  );
  // Async stack traces cost a capture per request; the platform does not need them.
  // A cluster's servers (NATS_URL comma-separated): the client moves to another when its server goes.
  const nc = await connect({
    servers: natsServers(config.NATS_URL),
    name: `voltvend-${config.VEND_PREFIX}`,
    noAsyncTraces: true,
    maxReconnectAttempts: -1,
    // Under the generated authorization (npm run nats:config) the platform logs in as `platform`.
    ...(config.VEND_NATS_PASSWORD ? { user: "platform", pass: config.VEND_NATS_PASSWORD } : {}),
  });
  logConnectionChanges(nc, log);
  const subjects = makeSubjects(config.VEND_PREFIX);
  const buckets = await ensureTopology(nc, subjects, { maxBytes: config.STREAM_MAX_BYTES, telemetryMaxAgeDays: config.TELEMETRY_MAX_AGE_DAYS, replicas: config.STREAM_REPLICAS });
  o.progress?.(`NATS: ${Object.keys(subjects.streams).length} streams and the buckets ready`);
  const db = createPool(config.DATABASE_URL, (err) => log.warn({ error: err.message }, "idle database connection lost"), 20, resolver, {
    failoverWaitMs: config.DB_FAILOVER_WAIT_MS,
  });
  // Reports read from a standby when READ_DATABASE_URL names one (docs/backup-and-restore.md).
  const readDb = config.READ_DATABASE_URL ? createReadPool(config.READ_DATABASE_URL, (err) => log.warn({ error: err.message }, "idle read connection lost")) : undefined;
  const registry = newRegistry(true);
  processMetrics(registry, { pool: db, nc, subjects });

  // Cutoff and faults step the same readings: one consumer feeds both (processors/host.ts).
  const startProcessors = (reg = registry) => {
    const stages: StageFactory[] = [];
    if (parts.cutoff) stages.push((ctx) => cutoffStage({ nc, subjects, buckets, log: log.child({ part: "cutoff" }), registry: reg, clock, silenceMs: config.SESSION_SILENCE_S * 1000 }, ctx));
    if (parts.faults) stages.push((ctx) => faultStage({ nc, subjects, buckets, log: log.child({ part: "faults" }), registry: reg, clock, offlineMs: config.TERMINAL_OFFLINE_S * 1000 }, ctx));
    const name = parts.cutoff && parts.faults ? "processors" : parts.cutoff ? "cutoff" : "faults";
    // Several instances share the terminals by partition; each partition is stepped by the one
    // instance holding its lease (docs/scaling.md, "Partitions and takeover").
    return startPartitionedProcessors({
      nc,
      subjects,
      log: log.child({ part: name }),
      clock,
      durable: subjects.consumer(name),
      leases: buckets.leases,
      count: config.PROCESSOR_PARTITIONS,
      leaseMs: config.PROCESSOR_LEASE_S * 1000,
      terminals: buckets.terminals,
      registry: reg,
      maxAheadMs: config.PROCESSOR_MAX_AHEAD_S * 1000,
      // A batch's effects are awaited before the next batch (state only after effects), so the
      // consumer's rate is about a batch per round trip to JetStream: under a backlog, batches of
      // up to 2,000 keep 10,000 readings/s going where 500 fell behind (docs/scaling.md). A quiet
      // stream still hands over what has arrived, one reading if that is all.
      maxBatch: 2000,
      stages,
    });
  };
  const processors = parts.cutoff || parts.faults ? await startProcessors() : null;
  const writer = parts.writer
    ? await startWriter({
        nc,
        db,
        subjects,
        log: log.child({ part: "writer" }),
        registry,
        clock,
        policy: { retentionDays: config.READINGS_RETENTION_DAYS, compressAfterDays: config.READINGS_COMPRESS_AFTER_DAYS },
        refreshEveryMs: config.AGGREGATE_REFRESH_S * 1000,
      })
    : null;
  const backup = parts.backup && config.BACKUP_NATS_URL ? startBackupInBackground(config.BACKUP_NATS_URL, { nc, subjects, log: log.child({ part: "backup" }), registry }) : null;
  const control = parts.control
    ? await startControl({ config, db, ...(readDb ? { readDb } : {}), nc, subjects, buckets, log: log.child({ part: "control" }), registry, clock })
    : null;
  const opsPort = config.METRICS_PORT ?? (control ? null : DEFAULT_METRICS_PORT);
  const ops = opsPort === null ? null : await startOpsServer({ port: opsPort, host: config.HOST, db, nc, registry, log: log.child({ part: "ops" }) });
  log.info({ url: control?.url, metricsUrl: ops?.url, prefix: config.VEND_PREFIX }, "platform started");

  let stopping: Promise<void> | null = null;
  const platform: Platform = {
    config,
    nc,
    db,
    subjects,
    buckets,
    log,
    control,
    writer,
    processors,
    // Metrics are registered once per registry: a restarted set counts in a fresh one.
    startProcessors: () => startProcessors(newRegistry(false)),
    url: control?.url ?? "",
    opsUrl: ops?.url ?? control?.url ?? "",
    stop() {
      stopping ??= (async () => {
        await ops?.stop();
        await control?.stop();
        await platform.processors?.stop();
        await writer?.stop();
        await backup?.stop();
        await nc.drain();
        await db.end();
        await readDb?.end();
      })();
      return stopping;
    },
  };
  return platform;
}

/**
 * Says when the NATS connection is lost and back: it reconnects by itself (maxReconnectAttempts
 * -1) and what waited on it is retried, so this is for the operator reading the log.
 */
function logConnectionChanges(nc: NatsConnection, log: Logger): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") log.warn({ server: s.server }, "NATS connection lost; reconnecting");
      else if (s.type === "reconnect") log.info({ server: s.server }, "NATS connection back");
    }
  })().catch(() => {});
}

/**
 * The backup store is independent: the platform runs without it, and the sink starts (and
 * catches up from its durable consumers) whenever the backup server can be reached.
 */
function startBackupInBackground(url: string, o: { nc: NatsConnection; subjects: Subjects; log: Logger; registry: import("prom-client").Registry }) {
  let stopped = false;
  let running: { stop(): Promise<void> } | null = null;
  let backupNc: NatsConnection | null = null;
  const attempt = async (): Promise<void> => {
    while (!stopped && !running) {
      try {
        backupNc = await connect({ servers: natsServers(url), name: "voltvend-backup", noAsyncTraces: true, maxReconnectAttempts: -1 });
        running = await startBackupSink({ ...o, backupNc });
      } catch (err) {
        o.log.warn({ err, url }, "backup store not reachable; retrying in 5 s");
        await backupNc?.close().catch(() => {});
        backupNc = null;
        await new Promise((r) => setTimeout(r, 5000));
      }
    }
  };
  const started = attempt();
  return {
    async stop() {
      stopped = true;
      await started;
      await running?.stop();
      await backupNc?.drain().catch(() => {});
    },
  };
}
