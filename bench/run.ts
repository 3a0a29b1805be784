import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { benchCutoff } from "./cutoff.ts";

/** `npm run bench`: runs each benchmark and writes its figures to bench/results/<name>.json. */
async function main() {
  const quick = process.argv.includes("--quick");
  mkdirSync("bench/results", { recursive: true });
  const env = { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, at: new Date().toISOString() };
  const cutoff = await benchCutoff({ terminals: 1000, seconds: quick ? 15 : 60, concurrent: 200, port: 18_080 });
  const out = { ...cutoff, env };
  writeFileSync("bench/results/cutoff.json", JSON.stringify(out, null, 2) + "\n");
  console.log(JSON.stringify(out, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
