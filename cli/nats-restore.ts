import { connect } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ConfigError, subjects as makeSubjects, type Config } from "../contracts/index.ts";
import { restoreStreams } from "../ingest/index.ts";

const STREAMS = ["telemetry", "events", "dlq", "results", "faults"] as const;

/** `--after` as epoch ms or an ISO time. */
function parseTime(v: string): number {
  const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isSafeInteger(t)) throw new ConfigError(`--after takes epoch milliseconds or an ISO time; got ${v}`);
  return t;
}

/**
 * `npm run nats:restore -- --streams telemetry,events [--after TIME] [--force]`: the streams
 * brought back from the backup server (ingest/restore.ts, docs/backup-and-restore.md).
 */
export async function restoreFromBackup(config: Config, argv: string[], log: Logger): Promise<void> {
  if (!config.BACKUP_NATS_URL) throw new ConfigError("nats:restore needs BACKUP_NATS_URL, the backup server's address");
  const i = argv.indexOf("--streams");
  const names = (i >= 0 ? (argv[i + 1] ?? "") : "").split(",").filter(Boolean);
  const bad = names.filter((n) => !(STREAMS as readonly string[]).includes(n));
  if (!names.length || bad.length) throw new ConfigError(`--streams takes a list of ${STREAMS.join(", ")}${bad.length ? `; not ${bad.join(", ")}` : ""}`);
  const a = argv.indexOf("--after");
  const after = a >= 0 ? parseTime(argv[a + 1] ?? "") : undefined;
  const s = makeSubjects(config.VEND_PREFIX);
  const nc = await connect({ servers: config.NATS_URL, name: "voltvend-restore", ...(config.VEND_NATS_PASSWORD ? { user: "platform", pass: config.VEND_NATS_PASSWORD } : {}) });
  const backupNc = await connect({ servers: config.BACKUP_NATS_URL, name: "voltvend-restore-backup" });
  try {
    const restored = await restoreStreams({
      nc,
      backupNc,
      subjects: s,
      streams: names.map((n) => s.streams[n as (typeof STREAMS)[number]]),
      ...(after !== undefined ? { after } : {}),
      force: argv.includes("--force"),
      progress: (stream, n) => log.info({ stream, restored: n }, "restoring"),
    });
    log.info({ restored }, "streams restored from the backup server");
    console.log(Object.entries(restored).map(([k, v]) => `${k}: ${v} messages restored`).join("\n"));
  } finally {
    await nc.drain();
    await backupNc.close();
  }
}
