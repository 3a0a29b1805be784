import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { constants, cpus } from "node:os";
import pg from "pg";
import { analyticsBase, benchAnalytics } from "./analytics.ts";
import { benchCutoff } from "./cutoff.ts";
import { benchFaults } from "./faults.ts";
import { benchScale } from "./scale.ts";
import { benchPlatformIngest, rawCopy, rawPublish } from "./ingest.ts";
import { NATS_URL } from "./harness.ts";
import { syncedNats } from "./servers.ts";
import { parseInt8AsNumber } from "../control/index.ts";

/**
 * `npm run bench`: each benchmark writes its figures to bench/results/<name>.json.
 * `npm run bench -- cutoff`, `-- faults`, `-- ingest`, `-- analytics` or `-- scale` runs one; `--quick` shortens them.
 * `npm run bench -- pg-ha` (only on its own) measures a PostgreSQL failover and a backup and restore.
 * `npm run bench -- cluster` (only on its own) measures a three-server NATS cluster beside one server.
 */
async function main() {
  parseInt8AsNumber();
  // Stopped by a signal, the benchmark still ends through "exit", where the harness kills the
  // platform processes it started (they would otherwise go on consuming and spoil the next run).
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(sig, () => process.exit(128 + constants.signals[sig]));
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const only = args.find((a) => !a.startsWith("-"));
  mkdirSync("bench/results", { recursive: true });
  const env = { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, at: new Date().toISOString() };
  // Progress: a line as each benchmark starts (with its count and expected length) and ends.
  const names = ["cutoff", "faults", "ingest", "analytics"].filter((n) => !only || only === n);
  const began = Date.now();
  const step = (name: string, about: string) =>
    console.log(`[${names.indexOf(name) + 1}/${names.length}] ${name}: running (${quick ? "quick" : about}); ${Math.round((Date.now() - began) / 1000)} s so far`);
  const write = (name: string, out: object) => {
    writeFileSync(`bench/results/${name}.json`, JSON.stringify({ ...out, env }, null, 2) + "\n");
    console.log(name, JSON.stringify(out, null, 2));
    console.log(`[${names.indexOf(name) + 1}/${names.length}] ${name}: done, written to bench/results/${name}.json`);
  };

  // Latency runs: the control service in a process of its own, the processors in another, the
  // writer in a third (docs/operations.md), so the control service never waits behind a batch.
  // BENCH_SPLIT="control,cutoff,faults|writer" tries another layout.
  const latencySplit = process.env.BENCH_SPLIT?.split("|") ?? ["control", "cutoff,faults", "writer"];
  if (!only || only === "cutoff") step("cutoff", "about 3 minutes");
  if (!only || only === "cutoff")
    write("cutoff", await benchCutoff({ terminals: 1000, seconds: quick ? 15 : 60, concurrent: 200, port: 18_080, split: latencySplit }));

  if (!only || only === "faults") step("faults", "about 2 minutes");
  if (!only || only === "faults")
    write("faults", await benchFaults({ port: 18_084, rate: 10_000, seconds: quick ? 15 : 40, split: latencySplit }));

  // The scale curve (issue 17, docs/scaling.md): long (a 5-minute run at 10,000 terminals), so
  // only when asked for. SCALE_LONG_S sets that run's length.
  // `--seconds=N` (or SCALE_LONG_S) sets the 10,000-terminal point's length, `--short-seconds=N`
  // (or SCALE_SHORT_S) the 1,000 and 3,000 points', `--stress-seconds=N` (or SCALE_STRESS_S) the
  // stress points'; SCALE_POINTS=1000,10000-singles runs only the points of those names.
  const opt = (name: string, envName: string) => {
    const v = args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? process.env[envName];
    return v ? Number(v) : undefined;
  };
  const longS = opt("seconds", "SCALE_LONG_S");
  const shortS = opt("short-seconds", "SCALE_SHORT_S");
  const stressS = opt("stress-seconds", "SCALE_STRESS_S");
  if (only === "scale")
    write(
      "scale",
      await benchScale({
        quick,
        split: latencySplit,
        port: 18_085,
        onPoint: (partial) => writeFileSync("bench/results/scale.json", JSON.stringify({ ...partial, env }, null, 2) + "\n"),
        ...(longS ? { longS } : {}),
        ...(shortS ? { shortS } : {}),
        ...(stressS ? { stressS } : {}),
      }),
    );

  if (!only || only === "ingest") {
    step("ingest", "about 5 minutes");
    const total = quick ? 50_000 : 200_000;
    const raw = { copyRowsPerSecond: await rawCopy(total * 2), jetstreamPublishPerSecond: await rawPublish(NATS_URL, total * 2) };
    // The writer in a process of its own, the rest in another: how the parts spread over two cores.
    const split = ["control,cutoff,faults", "writer"];
    const oneProcess = await benchPlatformIngest({ port: 18_083, total, withVisibility: false });
    const platform = await benchPlatformIngest({ port: 18_081, total, withVisibility: true, split });
    let synced: object;
    try {
      const server = await syncedNats(14_222);
      try {
        // Synced writes are slow: a smaller run says the same.
        const syncTotal = Math.min(total, 20_000);
        const rawSync = await rawPublish(server.url, syncTotal);
        const p2 = await benchPlatformIngest({ port: 18_082, natsUrl: server.url, total: syncTotal, withVisibility: false, split });
        synced = { mode: server.mode, readingsPerRun: syncTotal, jetstreamPublishPerSecond: rawSync, ...p2 };
      } finally {
        await server.stop();
      }
    } catch (e) {
      synced = { notMeasured: String((e as Error).message ?? e) };
    }
    const ratio = (x: number) => ({ ofCopy: x / raw.copyRowsPerSecond, ofJetStream: x / raw.jetstreamPublishPerSecond });
    write("ingest", {
      readingsPerRun: total,
      raw,
      processes: split,
      oneProcess: { singlesPerSecond: oneProcess.singlesPerSecond, batch50PerSecond: oneProcess.batch50PerSecond },
      platform: {
        ...platform,
        singlesRatio: ratio(platform.singlesPerSecond),
        batch50Ratio: ratio(platform.batch50PerSecond),
      },
      syncAlways: synced,
      goals: { singlesPerSecond: 20_000, batch50PerSecond: 60_000, visibilityP99Ms: 2000 },
    });
  }

  if (!only || only === "analytics") {
    step("analytics", "about 15 minutes: 30 days of 1000 terminals are loaded first");
    // Both storage paths where TimescaleDB is installed and preloaded; the plain one everywhere.
    const c = new pg.Client({ connectionString: `${analyticsBase("timescaledb")}/postgres` });
    c.on("error", () => {});
    const tsdb = await c.connect().then(async () => (
      await c.query(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' AS ok",
      )
    ).rows[0].ok as boolean, () => false);
    await c.end().catch(() => {});
    const runs = [];
    for (const storage of tsdb ? (["plain", "timescaledb"] as const) : (["plain"] as const))
      runs.push(
        await benchAnalytics({
          storage,
          days: 30,
          samples: quick ? 10 : 40,
          readingEveryS: quick ? 900 : 300,
          // BENCH_ANALYTICS_DB_PREFIX=x keeps the loaded data sets (x_plain, x_timescaledb) and reuses them next time.
          ...(process.env.BENCH_ANALYTICS_DB_PREFIX ? { keep: `${process.env.BENCH_ANALYTICS_DB_PREFIX}_${storage}` } : {}),
        }),
      );
    write("analytics", { runs, ...(tsdb ? {} : { timescaledb: `not measured: no PostgreSQL with the extension installed and preloaded at ${analyticsBase("timescaledb")} (BENCH_TSDB_PG)` }) });
  }

  // Not part of the default run: three nats-servers of its own and long (issue 12, docs/scaling.md).
  // CLUSTER_ONLY="ingest,cutoff" runs only some of its measures (ingest, cutoff, memory, failover).
  if (only === "cluster") {
    const { benchCluster } = await import("./cluster.ts");
    const partial = (x: object) => writeFileSync("bench/results/cluster.json", JSON.stringify({ ...x, partial: true, env }, null, 2) + "\n");
    // With CLUSTER_ONLY, the measures not run keep their figures of the last run (each says when).
    const only = process.env.CLUSTER_ONLY?.split(",").filter(Boolean);
    const before = only?.length && existsSync("bench/results/cluster.json") ? (JSON.parse(readFileSync("bench/results/cluster.json", "utf8")) as Record<string, unknown>) : {};
    const keep = Object.fromEntries(["ingest", "cutoff", "memory", "failover"].filter((k) => !only?.includes(k) && k in before).map((k) => [k, before[k]]));
    write("cluster", { ...keep, ...(await benchCluster({ quick, ...(only ? { only } : {}), onPartial: (x) => partial({ ...keep, ...x }) })) });
  }

  // Not part of the default run: it needs pg_auto_failover and pgBackRest (npm run pg:ha).
  if (only === "pg-ha") {
    const { benchPgHa } = await import("./pg-ha.ts");
    write("pg-ha", {
      ...(await benchPgHa({ port: Number(process.env.BENCH_PGHA_HTTP_PORT ?? 18_185), formationPort: Number(process.env.BENCH_PGHA_PORT ?? 6200), loadSeconds: quick ? 10 : 20, days: quick ? 3 : 30 })),
      note: "2 cores shared with other work while measured: rates and times are noisy; the standby runs on the same machine",
    });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
