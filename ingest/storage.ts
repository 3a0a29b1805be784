import type pg from "pg";

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
  const client = await db.connect();
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
    await client.query("SELECT pg_advisory_unlock(hashtext('voltvend_storage'))").catch(() => {});
    client.release();
  }
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
