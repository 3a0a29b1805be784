/* global process, performance, setInterval */
// Bench-only: counts the PostgreSQL statements and NATS requests a platform process makes, and how
// long each took to answer (issue 17: round trips per accepted session). Loaded into each platform
// process of a benchmark with
//   BENCH_NODE_ARGS="--import ./bench/query-count.mjs" QCOUNT_DIR=/tmp/qcount npm run bench -- scale
// Each process appends its cumulative counts once a second to QCOUNT_DIR/<parts>-<pid>.jsonl;
// bench/query-count-report.mjs takes the difference over a window. Statements are keyed by their
// first 140 characters (ids in subjects are replaced), so one key is one statement of the code.
import fs from "node:fs";
import { createRequire } from "node:module";

const fromApp = createRequire(process.cwd() + "/");
const pg = fromApp("pg");
const nats = fromApp("@nats-io/nats-core/internal");

const i = process.argv.indexOf("--parts");
const parts = (i >= 0 ? process.argv[i + 1] : "all").replace(/[^a-z]+/g, "+");
const dir = process.env.QCOUNT_DIR || "/tmp/qcount";
fs.mkdirSync(dir, { recursive: true });
const file = `${dir}/${parts}-${process.pid}.jsonl`;
const stats = {};
const note = (key, ms) => {
  const s = (stats[key] ??= { n: 0, ms: 0 });
  s.n++;
  s.ms += ms;
};

const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, values, callback) {
  const text = typeof config === "string" ? config : config?.submit ? `SUBMITTABLE ${config.text ?? ""}` : config?.text;
  // Literal arrays (the writer's marks) vary by batch: one key for the statement.
  const key = `pg ${String(text).replace(/\s+/g, " ").replace(/'\{[^}]*\}'/g, "'{...}'").trim().slice(0, 140)}`;
  const t0 = performance.now();
  const done = () => note(key, performance.now() - t0);
  if (typeof values === "function") {
    const f = values;
    values = (e, r) => (done(), f(e, r));
  } else if (typeof callback === "function") {
    const f = callback;
    callback = (e, r) => (done(), f(e, r));
  } else if (typeof config?.callback === "function") {
    const f = config.callback;
    config.callback = (e, r) => (done(), f(e, r));
  }
  const out = query.call(this, config, values, callback);
  if (typeof out?.then === "function") out.then(done, () => note(`${key} (failed)`, performance.now() - t0));
  return out;
};

const subject = (s) =>
  String(s)
    .replace(/^(\$JS\.API\.[A-Z_.]+?)\.[A-Za-z0-9_-]+(\..*)?$/, "$1")
    .replace(/bench_[a-z0-9_]+/g, "<p>")
    .replace(/\.(T|S-|C-|G)[\w-]+/g, ".<id>");
const request = nats.NatsConnectionImpl.prototype.request;
nats.NatsConnectionImpl.prototype.request = function (subj, data, opts) {
  const key = `nats-request ${subject(subj)}`;
  const t0 = performance.now();
  const p = request.call(this, subj, data, opts);
  p.then(
    () => note(key, performance.now() - t0),
    () => note(`${key} (failed)`, performance.now() - t0),
  );
  return p;
};
const publish = nats.NatsConnectionImpl.prototype.publish;
nats.NatsConnectionImpl.prototype.publish = function (subj, data, opts) {
  note(`nats-publish ${subject(subj)}`, 0);
  return publish.call(this, subj, data, opts);
};

const dump = () => {
  const cpu = process.cpuUsage();
  try {
    fs.appendFileSync(file, JSON.stringify({ at: Date.now(), cpuMs: (cpu.user + cpu.system) / 1000, stats }) + "\n");
  } catch {
    /* a full disk loses a sample, not the benchmark */
  }
};
setInterval(dump, 1000).unref();
process.on("exit", dump);
