import type pg from "pg";
import { until } from "./platform.ts";

export interface JobRun {
  /** Runs that succeeded in all, the one waited for included. */
  successes: number;
  failures: number;
}

/**
 * The one TimescaleDB job of `proc` (policy_compression, policy_retention,
 * policy_refresh_continuous_aggregate) on `relation`, a hypertable or a continuous aggregate.
 */
export async function policyJob(db: pg.Pool, proc: string, relation: string): Promise<number> {
  const r = await db.query<{ job_id: number }>("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = $1 AND hypertable_name = $2", [
    proc,
    relation,
  ]);
  if (r.rows.length !== 1) throw new Error(`expected one ${proc} job on ${relation}, found ${r.rows.length}`);
  return r.rows[0]!.job_id;
}

/**
 * Lets a policy's background job run every `every` from now on (its production schedule is hours
 * or minutes; the job itself is unchanged), and waits until TimescaleDB's scheduler has run it
 * successfully, after this call, with `effect` true. The scheduler runs it, not the test: a job
 * that fails in the background (as every job did on PostgreSQL 15.20 before the portal fix in
 * ../shared/timescaledb) never gets here.
 */
export async function policyRuns(db: pg.Pool, jobId: number, effect: () => Promise<boolean>, every = "1 second"): Promise<JobRun> {
  const mark = (await db.query<{ t: string }>("SELECT clock_timestamp()::text AS t")).rows[0]!.t;
  const before = (await db.query<{ every: string }>("SELECT schedule_interval::text AS every FROM timescaledb_information.jobs WHERE job_id = $1", [jobId])).rows[0]!.every;
  await db.query("SELECT alter_job($1::int, schedule_interval => $2::interval, next_start => now())", [jobId, every]);
  try {
    return await until(
      async () => {
        // A successful finish after the mark is the proof; `last_run_status` is no use here, as it
        // is null again while the next run (a second later) is under way.
        const r = await db.query<JobRun & { ran: boolean }>(
          `SELECT total_successes::int AS successes, total_failures::int AS failures,
                  coalesce(last_successful_finish > $2::timestamptz, false) AS ran
           FROM timescaledb_information.job_stats WHERE job_id = $1`,
          [jobId, mark],
        );
        const s = r.rows[0];
        if (!s?.ran || !(await effect())) return false;
        return { successes: s.successes, failures: s.failures };
      },
      // Under the test's own timeout, so that a job that never runs says so.
      45_000,
      250,
    );
  } finally {
    // Back to its own schedule, so that it does not run every second under the file's other tests.
    await db.query("SELECT alter_job($1::int, schedule_interval => $2::interval)", [jobId, before]);
  }
}
