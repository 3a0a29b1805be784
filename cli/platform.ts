import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { makeLogger } from "./log.ts";
import { subjects as makeSubjects, type Config, type Subjects } from "../contracts/index.ts";
import { createPool, newRegistry, startControl, type Db, type RunningControl } from "../control/index.ts";
import { ensureTopology, startWriter, type Buckets } from "../ingest/index.ts";
import { startCutoffProcessor, type RunningProcessor } from "../processors/index.ts";
import { migrate } from "../sql/index.ts";

export interface PlatformOptions {
  clock?: () => number;
  log?: Logger;
  /** Which parts run in this process; all by default (`npm start`). */
  parts?: { control?: boolean; cutoff?: boolean; writer?: boolean; backup?: boolean };
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
  /** Replaceable, so that a test can crash and restart the processor alone. */
  cutoff: RunningProcessor | null;
  /** Starts a cutoff processor on this platform's connection (after a stop of the running one). */
  startCutoff(): Promise<RunningProcessor>;
  url: string;
  stop(): Promise<void>;
}

/** Migrates, creates the NATS topology, and starts the processors and the control service. */
export async function startPlatform(config: Config, o: PlatformOptions = {}): Promise<Platform> {
  const log = o.log ?? makeLogger(config.LOG_LEVEL);
  const clock = o.clock ?? Date.now;
  const parts = { control: true, cutoff: true, writer: true, backup: true, ...o.parts };
  await migrate(config.DATABASE_URL, (m) => log.info(m), config.VEND_STORAGE);
  // Async stack traces cost a capture per request; the platform does not need them.
  const nc = await connect({ servers: config.NATS_URL, name: `voltvend-${config.VEND_PREFIX}`, noAsyncTraces: true, maxReconnectAttempts: -1 });
  const subjects = makeSubjects(config.VEND_PREFIX);
  const buckets = await ensureTopology(nc, subjects, { maxBytes: config.STREAM_MAX_BYTES, telemetryMaxAgeDays: config.TELEMETRY_MAX_AGE_DAYS });
  const db = createPool(config.DATABASE_URL, (err) => log.warn({ error: err.message }, "idle database connection lost"));
  const registry = newRegistry(!o.log);

  const startCutoff = () =>
    startCutoffProcessor({ nc, subjects, buckets, log: log.child({ part: "cutoff" }), registry: newRegistry(false), clock, silenceMs: config.SESSION_SILENCE_S * 1000 });
  const cutoff = parts.cutoff ? await startCutoffProcessor({ nc, subjects, buckets, log: log.child({ part: "cutoff" }), registry, clock, silenceMs: config.SESSION_SILENCE_S * 1000 }) : null;
  const writer = parts.writer
    ? await startWriter({
        nc,
        db,
        subjects,
        log: log.child({ part: "writer" }),
        registry,
        clock,
        policy: { retentionDays: config.READINGS_RETENTION_DAYS, compressAfterDays: config.READINGS_COMPRESS_AFTER_DAYS },
      })
    : null;
  const control = parts.control
    ? await startControl({ config, db, nc, subjects, buckets, log: log.child({ part: "control" }), registry, clock })
    : null;
  log.info({ url: control?.url, prefix: config.VEND_PREFIX }, "platform started");

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
    cutoff,
    startCutoff,
    url: control?.url ?? "",
    stop() {
      stopping ??= (async () => {
        await control?.stop();
        await platform.cutoff?.stop();
        await writer?.stop();
        await nc.drain();
        await db.end();
      })();
      return stopping;
    },
  };
  return platform;
}
