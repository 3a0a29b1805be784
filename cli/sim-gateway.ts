import { connect } from "@nats-io/transport-node";
import { ConfigError, idSchema, loadConfig } from "../contracts/index.ts";
import { createGateway } from "./sim/index.ts";

const usage = `usage: npm run sim -- --gateway G1 --terminal T1 [--terminal T2 ...]
  Runs a simulated gateway with its terminals on NATS_URL under VEND_PREFIX (as the platform's),
  until Ctrl-C: the terminals report readings and answer the platform's commands, so a charge can
  be tried before real hardware is connected (README, "An operator's first hour").`;

async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help")) return void console.log(usage);
  const config = loadConfig(process.env, { demo: true });
  const gatewayId = idSchema.safeParse(argv[argv.indexOf("--gateway") + 1]);
  const terminals = argv.flatMap((a, i) => (a === "--terminal" ? [argv[i + 1] ?? ""] : []));
  if (!argv.includes("--gateway") || !gatewayId.success) throw new ConfigError(usage);
  if (terminals.length === 0 || terminals.some((t) => !idSchema.safeParse(t).success)) throw new ConfigError(usage);
  const nc = await connect({ servers: config.NATS_URL });
  const gw = createGateway({ nc, prefix: config.VEND_PREFIX, gatewayId: gatewayId.data, tickMs: 1000 });
  for (const t of terminals) gw.addTerminal(t, {});
  await gw.flush();
  gw.start();
  console.log(`gateway ${gatewayId.data} with ${terminals.join(", ")} on ${config.NATS_URL} (prefix ${config.VEND_PREFIX}); Ctrl-C stops it`);
  const stop = async () => {
    await gw.stop();
    await nc.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

main(process.argv.slice(2)).catch((e) => {
  console.error(e instanceof ConfigError ? e.message : e);
  process.exit(1);
});
