/** Where the real servers of the test run are; the only environment the tests read. */
export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
/**
 * The TimescaleDB path's server: a cluster of its own with the extension preloaded (`.ci/run`
 * installs it on 5433 with ../shared/timescaledb/install --port 5433), so that the plain path keeps
 * a server without the extension.
 */
export const TSDB_ADMIN_URL = process.env.TEST_TSDB_PG_URL ?? "postgres://postgres@127.0.0.1:5433/postgres";
/**
 * Whether this run must have the TimescaleDB server (CI): then a missing one fails the run loudly
 * instead of skipping the TimescaleDB tests.
 */
export const TIMESCALEDB_REQUIRED =
  process.env.TEST_REQUIRE_TIMESCALEDB === "1" || (!!process.env.CI && !["0", "false"].includes(process.env.CI.toLowerCase()));
export const NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";

export const rand = () => Math.random().toString(36).slice(2, 10).padEnd(8, "0");

/**
 * This test run's id (4 characters), chosen by the global setup and inherited by the workers. Every
 * database and subject prefix of the run carries it, so two runs on one machine never touch each
 * other's state, and a run's leftovers can be told from a live run's (the run holds an advisory lock
 * named after it while it lives).
 */
export const RUN_ID = process.env.VT_RUN_ID ?? rand().slice(0, 4);
process.env.VT_RUN_ID = RUN_ID;

export const TEMPLATE_DB = `vtt_${RUN_ID}`;

/** A database name of this run: vt_<run>_<8 random>. */
export const testDbName = () => `vt_${RUN_ID}_${rand()}`;
/** A subject prefix of this run: t<run><6 random> (stream names start with it and `_`). */
export const testPrefix = () => `t${RUN_ID}${rand().slice(0, 6)}`;

/** The advisory lock a live run holds, keyed by its id. */
export const runLockKey = (run: string) => `voltvend-test-run:${run}`;

/** The storage path a database is made for; each has its own server. */
export type Engine = "plain" | "timescaledb";

export const adminUrl = (engine: Engine = "plain") => (engine === "timescaledb" ? TSDB_ADMIN_URL : PG_ADMIN_URL);

export function dbUrl(name: string, engine: Engine = "plain"): string {
  const u = new URL(adminUrl(engine));
  u.pathname = `/${name}`;
  return u.toString();
}

/** The fuzz runs (test/integration/fuzz-*.test.ts): how many requests and messages, which seed, where the figures go. */
export const FUZZ = {
  httpRuns: Number(process.env.FUZZ_HTTP_RUNS ?? 10_000),
  messages: Number(process.env.FUZZ_MESSAGES ?? 10_000),
  seed: process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED),
  /** Set (npm run fuzz sets bench/results/chaos.json): the runs write their figures there under "fuzz". */
  results: process.env.FUZZ_RESULTS,
};
