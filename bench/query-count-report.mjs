/* global console, process */
// Reads the counts bench/query-count.cjs wrote and prints, per platform process, each statement's
// count (and per accepted session: per `INSERT INTO sessions` of the control process) between the
// first session's insert and the process's end:
//   node bench/query-count-report.mjs /tmp/qcount [top]
import fs from "node:fs";

const dir = process.argv[2] ?? "/tmp/qcount";
const top = Number(process.argv[3] ?? 30);
const read = (f) => fs.readFileSync(`${dir}/${f}`, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const files = fs.readdirSync(dir).filter((f) => f.endsWith(".jsonl") && !f.startsWith("all-"));
const control = files.find((f) => f.startsWith("control"));
if (!control) throw new Error(`no control process's counts in ${dir}`);
const inserts = (d) => Object.entries(d.stats).filter(([k]) => k.startsWith("pg INSERT INTO sessions")).reduce((s, [, v]) => s + v.n, 0);
const c = read(control);
const from = c[Math.max(0, c.findIndex((d) => inserts(d) > 0) - 1)].at;
const sessions = inserts(c.at(-1)) - inserts(c.find((d) => d.at >= from));
for (const f of files) {
  const lines = read(f);
  const near = (t) => lines.reduce((a, b) => (Math.abs(b.at - t) < Math.abs(a.at - t) ? b : a));
  const a = near(from);
  const b = lines.at(-1);
  const rows = Object.entries(b.stats)
    .map(([k, v]) => [k, v.n - (a.stats[k]?.n ?? 0), v.ms - (a.stats[k]?.ms ?? 0)])
    .filter(([, n]) => n > 0)
    .sort((x, y) => y[1] - x[1]);
  const sum = (prefix) => rows.filter(([k]) => k.startsWith(prefix)).reduce((s, [, n]) => s + n, 0);
  const per = (n) => (sessions > 0 ? (n / sessions).toFixed(1) : "-");
  console.log(
    `\n${f}: ${((b.at - a.at) / 1000).toFixed(0)} s, CPU ${(b.cpuMs - a.cpuMs).toFixed(0)} ms (${per(b.cpuMs - a.cpuMs)} ms per session); ` +
      `${sum("pg ")} statements (${per(sum("pg "))} per session), ${sum("nats-request ")} NATS requests (${per(sum("nats-request "))}); ${sessions} sessions`,
  );
  for (const [k, n, ms] of rows.slice(0, top)) console.log(String(n).padStart(7), per(n).padStart(6), `${(ms / n).toFixed(1)} ms`.padStart(9), k.slice(0, 150));
}
