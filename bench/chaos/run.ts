import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { FAULTS, runChaos, type ChaosResult, type FaultName } from "./scenario.ts";

/**
 * `npm run chaos`: the platform as separate processes under a simulated fleet, each fault in turn,
 * the invariants after each. Figures go to bench/results/chaos.json under the key "chaos" (the
 * file is shared: other keys are kept). `-- --quick` shortens the waits; `-- --only kill_nats,...`
 * runs some faults. Exits 1 when an invariant failed.
 */
async function main() {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const only = args[args.indexOf("--only") + 1];
  const faults = args.includes("--only") && only ? (only.split(",") as FaultName[]) : FAULTS;
  const bad = faults.filter((f) => !(FAULTS as readonly string[]).includes(f));
  if (bad.length) throw new Error(`unknown faults ${bad.join(", ")}; known: ${FAULTS.join(", ")}`);
  const result = await runChaos({
    pgAdminUrl: process.env.CHAOS_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    faults,
    ...(quick ? { warmupMs: 10_000, settleMs: 5_000, scrambleMs: 10_000, lateMaxMs: 15_000, pgCutMs: 3_000, drainTimeoutMs: 60_000 } : {}),
  });
  write(result, quick);
  console.log(`chaos: invariants held: ${Object.entries(result.held).map(([k, v]) => `${k} ${v ? "yes" : "NO"}`).join(", ")}`);
  console.log(`chaos: figures in bench/results/chaos.json; process logs in ${result.logs}/logs`);
  process.exit(Object.values(result.held).every(Boolean) ? 0 : 1);
}

function write(result: ChaosResult, quick: boolean): void {
  const path = "bench/results/chaos.json";
  mkdirSync("bench/results", { recursive: true });
  // Read-modify-write: the fuzz run keeps its figures in the same file.
  const doc = existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>) : {};
  doc.chaos = { ...result, quick, env: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model } };
  writeFileSync(path, JSON.stringify(doc, null, 2) + "\n");
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
