import type pg from "pg";
import { withClient } from "./pg.ts";

export interface StoragePolicy {
  retentionDays: number;
  compressAfterDays: number;
}

export async function storageEngine(db: pg.Pool): Promise<"timescaledb" | "plain"> {
  const r = await db.query<{ e: "timescaledb" | "plain" }>("SELECT vv_storage_engine() AS e");
  return r.rows[0]!.e;
}

/**
 * Keeps the readings storage in shape; run at start and hourly, from any number of writers.
 * TimescaleDB: compression and retention policies (replaced when the configured interval changed).
 * Plain: day partitions from two days back to three ahead, and partitions past retention dropped.
 */
export async function maintainStorage(db: pg.Pool, p: StoragePolicy, now: number): Promise<{ engine: string; made: number; dropped: number }> {
  const engine = await storageEngine(db);
  return withClient(db, async (client) => {
    try {
      await client.query("SELECT pg_advisory_lock(hashtext('voltvend_storage'))");
      if (engine === "timescaledb") {
        await setPolicy(client, "policy_retention", "drop_after", `${p.retentionDays} days`, (i) =>
          client.query("SELECT add_retention_policy('readings', $1::interval)", [i]),
        );
        await setPolicy(client, "policy_compression", "compress_after", `${p.compressAfterDays} days`, (i) =>
          client.query("SELECT add_compression_policy('readings', $1::interval)", [i]),
        );
        return { engine, made: 0, dropped: 0 };
      }
      const day = (offsetDays: number) => new Date(now + offsetDays * 86_400_000).toISOString().slice(0, 10);
      const made = await client.query<{ n: number }>("SELECT vv_ensure_reading_partitions($1::date, $2::date) AS n", [day(-2), day(3)]);
      const dropped = await client.query<{ n: number }>("SELECT vv_drop_reading_partitions_before($1::date) AS n", [day(-p.retentionDays)]);
      return { engine, made: made.rows[0]!.n, dropped: dropped.rows[0]!.n };
    } finally {
      // A lost connection took its session lock with it.
      await client.query("SELECT pg_advisory_unlock(hashtext('voltvend_storage'))").catch(() => {});
    }
  });
}

async function setPolicy(
  c: pg.PoolClient,
  proc: string,
  key: string,
  interval: string,
  add: (interval: string) => Promise<unknown>,
): Promise<void> {
  const r = await c.query<{ job_id: number; matches: boolean }>(
    `SELECT job_id, (config ->> $2)::interval = $3::interval AS matches FROM timescaledb_information.jobs
     WHERE proc_name = $1 AND hypertable_name = 'readings'`,
    [proc, key, interval],
  );
  const job = r.rows[0];
  if (job?.matches) return;
  if (job) await c.query("SELECT delete_job($1::int)", [job.job_id]);
  await add(interval);
}

/** Each refresh recomputes at least this far back: readings a little late are the rule. */
const USUAL_LATENESS_MS = 120_000;

/**
 * Brings the telemetry aggregates (sql/009_telemetry_aggregates.sql) up to `now`; the writer runs
 * it every minute with `since`, the time of the oldest reading it stored since its last refresh,
 * so late readings are counted however late they came. Queries are right without a refresh for
 * what was never materialized (real-time aggregation adds it); the refresh keeps them fast and
 * brings in late readings. TimescaleDB: the continuous aggregates' own refresh policies run too,
 * but never reach back past their windows, and their background jobs fail on unpatched builds on
 * PostgreSQL 15.20, so the refresh is also called here, each level over its policy's window,
 * reaching back to `since` when that is earlier.
 */
export async function refreshAggregates(db: pg.Pool, now: number, o: { since?: number } = {}): Promise<{ engine: string; rows: number }> {
  const engine = await storageEngine(db);
  const since = Math.min(o.since ?? Infinity, now - USUAL_LATENESS_MS);
  if (engine === "plain") {
    const r = await db.query<{ n: number }>("SELECT vv_refresh_telemetry(vv_ms_to_ts($1::bigint), vv_ms_to_ts($2::bigint)) AS n", [now, since]);
    return { engine, rows: r.rows[0]!.n };
  }
  const windows: [string, string, string, string][] = [
    ["telemetry_minute", "3 hours", "1 minute", "1 minute"],
    ["telemetry_hour", "3 days", "1 hour", "1 hour"],
    ["telemetry_day", "30 days", "1 day", "1 day"],
  ];
  const at = (ms: number) => `to_timestamp(${Math.floor(ms / 1000)})`;
  for (const [view, start, end, width] of windows) {
    // A late reading only reaches further back than the policy's window, never shorter; from the
    // start of its bucket (the refresh takes only whole buckets inside the window).
    const from = `least(time_bucket(interval '${width}', ${at(since)}), ${at(now)} - interval '${start}')`;
    // CALL takes no bind parameters here: the values are ours (numbers and the fixed intervals).
    await whileRefreshing(() => db.query(`CALL refresh_continuous_aggregate('${view}', ${from}, ${at(now)} - interval '${end}')`));
  }
  return { engine, rows: 0 };
}

/**
 * Runs a continuous aggregate's refresh, waiting out another refresh of it: TimescaleDB refuses
 * overlapping ones with lock_not_available ("due to a concurrent refresh"), and where its
 * background jobs run, a policy's refresh can take the same moment. The other refresh may cover
 * a different window, so this one runs after it rather than being skipped.
 */
export async function whileRefreshing<T>(refresh: () => Promise<T>, waitMs = 30_000): Promise<T> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      return await refresh();
    } catch (e) {
      if ((e as { code?: string }).code !== "55P03" || Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
