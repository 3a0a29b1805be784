import { getPriority, setPriority } from "node:os";
import { relative, resolve } from "node:path";
import type { Logger } from "pino";
import { makeLogger } from "./log.ts";
import { screen, type Screen } from "./screen.ts";
import { ConfigError, loadConfig } from "../contracts/index.ts";
import { parseInt8AsNumber, primaryResolver, waitForPrimary } from "../control/index.ts";
import { migrateDatabase, startPlatform } from "./platform.ts";
import { ensureServices, ServiceError } from "./services.ts";
import { LOCAL_CLUSTER_URL } from "./local-cluster.ts";

const usage = `usage: npm start [-- --demo [--terminals N] [--log FILE]]
                                                   run the platform (with a simulated fleet; its log
                                                   goes to FILE, .data/demo.log by default)
       npm start -- --cluster [--demo ...]         the same on three nats-servers clustered on this
                                                   machine (started when not running, stores under
                                                   .data/nats-cluster/), every stream and bucket at
                                                   STREAM_REPLICAS=3 (docs/scaling.md)
       npm start -- --parts writer,cutoff          run only some parts (control, cutoff, faults, writer, backup)
       npm run db:migrate                          apply the SQL migrations
       npm run nats:config -- --out FILE [--franchisee-history]
                                                   write the NATS authorization from the registry
       npm run nats:restore -- --streams telemetry,events[,dlq,results,faults] [--after TIME] [--force]
                                                   bring lost streams back from the backup server
                                                   (BACKUP_NATS_URL) to the platform's NATS`;

const PARTS = ["control", "cutoff", "faults", "writer", "backup"] as const;

function parseParts(argv: string[]): Partial<Record<(typeof PARTS)[number], boolean>> | undefined {
  const i = argv.indexOf("--parts");
  if (i < 0) return undefined;
  const want = (argv[i + 1] ?? "").split(",").filter(Boolean);
  const bad = want.filter((w) => !(PARTS as readonly string[]).includes(w));
  if (bad.length || want.length === 0) throw new ConfigError(`--parts takes a list of ${PARTS.join(", ")}; got ${argv[i + 1] ?? "nothing"}`);
  return Object.fromEntries(PARTS.map((p) => [p, want.includes(p)]));
}

/**
 * A background process (the writer, the backup) yields the cores to the latency-critical parts on
 * the same host: raising its own nice value needs no privilege. A host that refuses says so and
 * the process runs as it was started.
 */
function lowerPriority(nice: number, log: Logger): void {
  try {
    if (getPriority() < nice) setPriority(nice);
    log.info({ nice: getPriority() }, "background parts only: running at a lower priority (BACKGROUND_NICE)");
  } catch (err) {
    log.warn({ err, nice }, "could not lower this process's priority; running as started");
  }
}

async function main(argv: string[]): Promise<void> {
  parseInt8AsNumber();
  const demo = argv.includes("--demo");
  const parts = parseParts(argv);
  const command = argv.find((a, i) => !a.startsWith("-") && !["--parts", "--terminals", "--out", "--log", "--streams", "--after"].includes(argv[i - 1] ?? "")) ?? "start";
  if (argv.includes("--help")) return void console.log(usage);
  const cluster = argv.includes("--cluster");
  // --cluster: the local cluster's servers and three replicas, unless the environment says otherwise.
  const env = cluster ? { NATS_URL: LOCAL_CLUSTER_URL, STREAM_REPLICAS: "3", ...process.env } : process.env;
  const config = loadConfig(env, { demo });
  // The demo keeps the terminal for a person: its log goes to a file, said on the first line.
  const logFile = demo && command === "start" ? resolve(argv.includes("--log") ? (argv[argv.indexOf("--log") + 1] ?? "") : ".data/demo.log") : undefined;
  const log = makeLogger(config.LOG_LEVEL, logFile);
  const sc: Screen | null = logFile ? screen() : null;
  const shown = logFile && !relative(process.cwd(), logFile).startsWith("..") ? relative(process.cwd(), logFile) : logFile;
  if (logFile) sc?.line(`Voltvend demo · the log goes to ${shown} (tail -f it to follow)`);
  let natsConfig: { out: string; secret: string; platformPassword: string } | undefined;
  if (command === "nats-config") {
    const out = argv[argv.indexOf("--out") + 1];
    if (!argv.includes("--out") || !out || out.startsWith("-")) throw new ConfigError(`nats-config needs --out FILE\n${usage}`);
    if (!config.VEND_NATS_SECRET || !config.VEND_NATS_PASSWORD)
      throw new ConfigError("nats-config needs VEND_NATS_SECRET (franchisees' and gateways' passwords derive from it) and VEND_NATS_PASSWORD (the platform user's)");
    natsConfig = { out, secret: config.VEND_NATS_SECRET, platformPassword: config.VEND_NATS_PASSWORD };
  }
  sc?.status("[1/3] NATS and PostgreSQL: connecting");
  const services = await ensureServices(config, log, undefined, { cluster });
  sc?.line(`[1/3] NATS and PostgreSQL: ${services.started.length ? `started here under .data/ (${services.started.join(", ")})` : "reachable"}`);

  if (command === "migrate") {
    const applied = await migrateDatabase(config, (m) => log.info(m));
    log.info({ applied }, applied.length ? "migrations applied" : "database is up to date");
    return services.stop();
  }
  if (command === "nats-config" && natsConfig) {
    const { writeNatsConfig } = await import("./nats-config.ts");
    try {
      const r = await writeNatsConfig(await waitForPrimary(primaryResolver(config.DATABASE_URL)), { ...natsConfig, prefix: config.VEND_PREFIX, franchiseeHistory: argv.includes("--franchisee-history") });
      log.info(r, "NATS authorization written: include it in the server's configuration and reload the server");
    } finally {
      await services.stop();
    }
    return;
  }
  if (command === "restore-streams") {
    const { restoreFromBackup } = await import("./nats-restore.ts");
    try {
      await restoreFromBackup(config, argv, log);
    } finally {
      await services.stop();
    }
    return;
  }
  if (command !== "start") throw new ConfigError(`unknown command ${command}\n${usage}`);

  if (parts && !parts.control && !parts.cutoff && !parts.faults && config.BACKGROUND_NICE > 0) lowerPriority(config.BACKGROUND_NICE, log);
  const platform = await startPlatform(config, { log, ...(parts ? { parts } : {}), ...(sc ? { progress: (m: string) => sc.status(`[2/3] ${m}`) } : {}) });
  sc?.line("[2/3] database migrated, NATS streams ready, platform running");
  let stopDemo: (() => Promise<void>) | undefined;
  if (demo && !platform.control) throw new ConfigError("--demo needs the control part");
  if (demo) {
    const { startDemo } = await import("./demo.ts");
    const n = Number(argv[argv.indexOf("--terminals") + 1]) || 20;
    stopDemo = await startDemo(platform, { terminals: argv.includes("--terminals") ? n : 20, screen: sc ?? screen() });
  }
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, "shutting down: finishing in-flight work");
    sc?.end();
    sc?.line("stopping: finishing the work in hand");
    await stopDemo?.();
    await platform.stop();
    await services.stop();
    log.info("stopped");
    sc?.line("stopped");
    log.flush?.();
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
}

main(process.argv.slice(2)).catch((e) => {
  if (e instanceof ConfigError || e instanceof ServiceError) console.error(e.message);
  else console.error(e);
  process.exit(1);
});
