import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { FAULTS, runChaos, type ChaosResult, type FaultName } from "./scenario.ts";
import { parseInt8AsNumber } from "../../control/index.ts";

/**
 * `npm run chaos`: the platform as separate processes under a simulated fleet, each fault in turn,
 * the invariants after each. Figures go to bench/results/chaos.json under the key "chaos" (the
 * file is shared: other keys are kept). `-- --quick` shortens the waits; `-- --only kill_nats,...`
 * runs some faults. Exits 1 when an invariant failed.
 */
async function main() {
  parseInt8AsNumber();
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const only = args[args.indexOf("--only") + 1];
  const faults = args.includes("--only") && only ? (only.split(",") as FaultName[]) : FAULTS;
  const bad = faults.filter((f) => !(FAULTS as readonly string[]).includes(f));
  if (bad.length) throw new Error(`unknown faults ${bad.join(", ")}; known: ${FAULTS.join(", ")}`);
  // Each fault twice in the full run: what a fault costs depends on what was in flight when it hit.
  const rounds = quick ? 1 : 2;
  const result = await runChaos({
    pgAdminUrl: process.env.CHAOS_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    faults: Array.from({ length: rounds }, () => faults).flat(),
    ...(quick ? { warmupMs: 10_000, settleMs: 5_000, scrambleMs: 10_000, lateMaxMs: 15_000, pgCutMs: 3_000, drainTimeoutMs: 60_000 } : {}),
  });
  write(result, quick);
  console.log(table(result));
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

/** The durability table of docs/durability.md, from a run's figures. */
export function table(r: ChaosResult): string {
  const rows = r.phases
    .filter((p) => p.fault !== "baseline" && p.fault !== "final")
    .map((p) => {
      const failed = Object.entries(p.invariants)
        .filter(([, v]) => !v.ok)
        .map(([k, v]) => `${k} (${v.violations})`);
      const req = p.requests;
      return `| ${p.fault} | ${p.recoverMs === null ? "not recovered" : `${(p.recoverMs / 1000).toFixed(1)} s`} | ${p.sessions.liveAtFault} + ${p.sessions.startedDuringOutage} | ${p.sessions.disrupted} (${p.sessions.pastStop} past their stop, worst +${p.sessions.worstPastStopWh} Wh) | ${req.total}: ${req.errors5xx} × 5xx, ${req.noAnswer} unanswered | ${p.revived.length ? p.revived.join(", ") : "-"} | ${failed.length ? failed.join(", ") : "all held"} |`;
    });
  return [
    "| fault | time to recover | sessions live at the fault + started before recovery | disrupted (first seen after this fault) | HTTP calls until recovery | died unasked, restarted | invariants broken (new violations) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
