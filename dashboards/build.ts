import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { dashboards } from "./all.ts";

/** `npm run dashboards:build`: writes dashboards/json/<name>.json, ready for Grafana's import or API. */
const out = join(dirname(fileURLToPath(import.meta.url)), "json");
mkdirSync(out, { recursive: true });
for (const [name, d] of Object.entries(dashboards())) {
  writeFileSync(join(out, `${name}.json`), JSON.stringify(d, null, 2) + "\n");
  console.log(`dashboards/json/${name}.json`);
}
