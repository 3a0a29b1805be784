import { makeLogger } from "./log.ts";
import { ConfigError, loadConfig } from "../contracts/index.ts";
import { migrate } from "../sql/index.ts";
import { startPlatform } from "./platform.ts";
import { ensureServices, ServiceError } from "./services.ts";

const usage = `usage: npm start [-- --demo [--terminals N]]   run the platform (with a simulated fleet)
       npm run db:migrate                          apply the SQL migrations`;

async function main(argv: string[]): Promise<void> {
  const demo = argv.includes("--demo");
  const command = argv.find((a) => !a.startsWith("-")) ?? "start";
  if (argv.includes("--help")) return void console.log(usage);
  const config = loadConfig(process.env, { demo });
  const log = makeLogger(config.LOG_LEVEL);
  const services = await ensureServices(config, log);

  if (command === "migrate") {
    const applied = await migrate(config.DATABASE_URL, (m) => log.info(m));
    log.info({ applied }, applied.length ? "migrations applied" : "database is up to date");
    return services.stop();
  }
  if (command !== "start") throw new ConfigError(`unknown command ${command}\n${usage}`);

  const platform = await startPlatform(config, { log });
  let stopDemo: (() => Promise<void>) | undefined;
  if (demo) {
    const { startDemo } = await import("./demo.ts");
    const n = Number(argv[argv.indexOf("--terminals") + 1]) || 20;
    stopDemo = await startDemo(platform, { terminals: argv.includes("--terminals") ? n : 20 });
  }
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, "shutting down: finishing in-flight work");
    await stopDemo?.();
    await platform.stop();
    await services.stop();
    log.info("stopped");
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
