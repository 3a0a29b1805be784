import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, openSync, closeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Sets `doc[key][sub] = value` in a JSON results file (bench/results/chaos.json) by
 * read-modify-write, keeping every other key (the chaos run writes its own there). A lock file
 * keeps two test workers finishing together from losing each other's write.
 */
export async function mergeResult(file: string, key: string, sub: string, value: unknown): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  const lock = `${file}.lock`;
  for (let i = 0; ; i++) {
    try {
      closeSync(openSync(lock, "wx"));
      break;
    } catch {
      // A lock left by a killed run is taken over after 10 s.
      if (i > 200) rmSync(lock, { force: true });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    let doc: Record<string, any> = {};
    try {
      doc = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      doc = {};
    }
    doc[key] = { ...(doc[key] ?? {}), [sub]: value };
    writeFileSync(`${file}.tmp`, JSON.stringify(doc, null, 2) + "\n");
    renameSync(`${file}.tmp`, file);
  } finally {
    rmSync(lock, { force: true });
  }
}
