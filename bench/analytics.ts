import { loadavg } from "node:os";
import pg from "pg";
import { regionInsights, buildPackage, rollSessionUsage, usageReport, type GroupBy } from "../control/index.ts";
import { refreshAggregates } from "../ingest/index.ts";
import { migrate } from "../sql/index.ts";
import { copy, PG_BASE, percentile } from "./harness.ts";

const MIN = 60_000;
/**
 * The TimescaleDB path's server: a cluster of its own with the extension preloaded (5433, as the
 * tests and .ci/run have it), so that the plain path keeps a server without it (PG_BASE).
 */
export const TSDB_BASE = process.env.BENCH_TSDB_PG ?? "postgres://postgres@127.0.0.1:5433";
export const analyticsBase = (storage: "plain" | "timescaledb") => (storage === "timescaledb" ? TSDB_BASE : PG_BASE);
const DAY = 86_400_000;

/** A small seeded generator: the same fleet and usage on every run. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export interface Fleet {
  terminals: number;
  users: number;
  days: number;
  /** A reading every this many seconds per terminal (busy shares do not depend on it). */
  readingEveryS: number;
}


/**
 * 30 days of a fleet: per terminal, up to eight sessions a day (30-90 min, 3.6 kW, random users,
 * busier in the evening), and a reading every `readingEveryS` with the register and relay to
 * match; then the platform's own rollup and aggregate refresh over it.
 */
export async function seed(db: pg.Pool, f: Fleet, end: number) {
  const rnd = prng(42);
  const start = end - f.days * DAY;
  const c = await db.connect();
  try {
    await c.query("INSERT INTO regions (region_id, name, timezone) SELECT 'R' || i, 'Region ' || i, 'Asia/Shanghai' FROM generate_series(1, 4) i");
    await c.query(
      `INSERT INTO tariff_versions (region_id, version, effective_from, periods)
       SELECT 'R' || i, 1, 'epoch', '[{"start":"00:00","end":"24:00","energyCentsPerKwh":100,"timeCentsPerHour":0}]' FROM generate_series(1, 4) i`,
    );
    await c.query("INSERT INTO franchisees (franchisee_id, name) SELECT 'F' || i, 'Franchisee ' || i FROM generate_series(1, 20) i");
    await c.query("INSERT INTO gateways (gateway_id, region_id) SELECT 'G' || i, 'R' || (i % 4 + 1) FROM generate_series(0, $1::int - 1) i", [f.terminals / 50]);
    await c.query(
      `INSERT INTO terminals (terminal_id, qr, gateway_id, region_id, franchisee_id, profile)
       SELECT 'T' || i, 'q' || i, 'G' || (i / 50), 'R' || ((i / 50) % 4 + 1), 'F' || (i % 20 + 1), '{}' FROM generate_series(0, $1::int - 1) i`,
      [f.terminals],
    );
    await c.query("INSERT INTO users (user_id, balance_cents) SELECT 'U' || i, 100000 FROM generate_series(0, $1::int - 1) i", [f.users]);

    const sessions: string[] = [];
    const readings = function* () {
      for (let t = 0; t < f.terminals; t++) {
        const region = `R${(Math.floor(t / 50) % 4) + 1}`;
        // Sessions in 3-hour slots, more likely in the evening (local UTC+8).
        const own: { s: number; e: number; mwh0: number; rate: number }[] = [];
        let mwh = 1_000_000;
        for (let slot = start; slot < end - 3 * 3_600_000; slot += 3 * 3_600_000) {
          const localHour = new Date(slot + 8 * 3_600_000).getUTCHours();
          const p = localHour >= 18 ? 0.8 : localHour >= 9 ? 0.45 : 0.15;
          if (rnd() > p) continue;
          const s = slot + Math.floor(rnd() * 60) * MIN;
          const e = s + (30 + Math.floor(rnd() * 60)) * MIN;
          own.push({ s, e, mwh0: mwh, rate: 1000 }); // 1 Wh per second at 3.6 kW
          const energy = ((e - s) / 1000) * 1000;
          const user = `U${Math.floor(rnd() * f.users)}`;
          const id = `S-${t}-${s}`;
          const iso = (x: number) => new Date(x).toISOString();
          sessions.push(
            `${id}\t${user}\tT${t}\tG${Math.floor(t / 50)}\t${region}\tF${(t % 20) + 1}\tcompleted\tt\t{"durationS": 3600}\tprepaid\t1\t100000\t${mwh}\t${mwh + energy}\t${energy}\t${e - s}\t${Math.round(energy / 10_000)}\ttarget_reached\t${iso(s)}\t${iso(s)}\t${iso(e)}\n`,
          );
          mwh += energy;
        }
        let k = 0;
        for (let ts = start; ts < end; ts += f.readingEveryS * 1000) {
          while (k < own.length && own[k]!.e < ts) k++;
          const cur = own[k];
          const on = cur !== undefined && ts >= cur.s && ts <= cur.e;
          const reg = cur === undefined ? mwh : ts < cur.s ? cur.mwh0 : cur.mwh0 + Math.min(ts - cur.s, cur.e - cur.s) * (cur.rate / 1000);
          const iso = new Date(ts).toISOString();
          yield `T${t}\t${iso}\tG${Math.floor(t / 50)}\t0\t${on ? "t" : "f"}\t${on ? 16.4 : 0}\t220\t${on ? 3608 : 0}\t${Math.round(reg)}\t\\N\t${iso}\n`;
        }
      }
    };
    await c.query("SELECT vv_ensure_reading_partitions($1::date, $2::date)", [new Date(start - DAY).toISOString().slice(0, 10), new Date(end + DAY).toISOString().slice(0, 10)]);
    await copy(c, "COPY readings (terminal_id, ts, gateway_id, seq, relay_on, current_a, voltage_v, power_w, energy_mwh, session_id, received_at) FROM STDIN", readings());
    await copy(
      c,
      `COPY sessions (session_id, user_id, terminal_id, gateway_id, region_id, franchisee_id, state, handshake_ok, target, payment, tariff_version,
         cap_cents, start_mwh, end_mwh, energy_mwh, duration_ms, fee_cents, stop_reason, created_at, started_at, ended_at) FROM STDIN`,
      sessions,
    );
    await c.query("ANALYZE");
    const counts = await c.query("SELECT (SELECT count(*) FROM readings)::int AS readings, (SELECT count(*) FROM sessions)::int AS sessions");
    return counts.rows[0] as { readings: number; sessions: number };
  } finally {
    c.release();
  }
}

async function timed<T>(samples: number, fn: (i: number) => Promise<T>) {
  const ms: number[] = [];
  await fn(0); // warm
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    await fn(i);
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 50), p95: percentile(ms, 95), max: ms.at(-1)! };
}

/**
 * Report and curve queries over 30 days of usage for 1000 terminals and 10 000 users (issue 5),
 * and the cost of keeping the aggregates current at 10 000 readings/s.
 */
export async function benchAnalytics(o: {
  storage: "plain" | "timescaledb";
  days: number;
  samples: number;
  readingEveryS: number;
  /**
   * A database to keep (BENCH_ANALYTICS_DB_PREFIX + storage): loaded and kept on the first run,
   * reused as loaded (migrated to the newest files, nothing seeded again) on the next, so that
   * queries can be worked on against the full data set without loading it each time.
   * @default a database of the run's own, dropped at the end
   */
  keep?: string;
}) {
  const name = o.keep ?? `bench_analytics_${o.storage}_${Date.now().toString(36)}`;
  const url = `${analyticsBase(o.storage)}/${name}`;
  await migrate(url, () => {}, o.storage);
  const db = new pg.Pool({ connectionString: url, max: 4 });
  try {
    const fleet: Fleet = { terminals: 1000, users: 10_000, days: o.days, readingEveryS: o.readingEveryS };
    const loaded = o.keep ? (await db.query<{ end: string | null }>("SELECT vv_ts_to_ms(max(ended_at))::text AS end FROM sessions")).rows[0]!.end : null;
    // The start of today (UTC): the same data in every run of the day, and in the past. A kept
    // database keeps the day it was loaded on.
    const end = loaded === null ? Math.floor(Date.now() / DAY) * DAY : Math.ceil(Number(loaded) / DAY) * DAY;
    const t0 = performance.now();
    const counts = loaded === null ? await seed(db, fleet, end) : (await db.query("SELECT (SELECT count(*) FROM readings)::int AS readings, (SELECT count(*) FROM sessions)::int AS sessions")).rows[0] as { readings: number; sessions: number };
    const seeded = performance.now();
    let rolled = 0;
    for (let n; (n = await rollSessionUsage(db, end + DAY, 5000)) > 0; ) rolled += n;
    const rollMs = performance.now() - seeded;
    const r0 = performance.now();
    if (loaded === null) await refreshAggregates(db, end, { since: end - o.days * DAY });
    const refreshAllMs = performance.now() - r0;
    // What autovacuum and the checkpointer would have done by the time anyone reads a month of
    // data, so that the timings do not share the two cores with a vacuum of 8.6 M fresh readings
    // or a checkpoint spreading their writes over minutes.
    await db.query("VACUUM ANALYZE");
    await db.query("CHECKPOINT");

    const from = end - 30 * DAY;
    const rnd = prng(7);
    const pick = (n: number, p: string) => `${p}${Math.floor(rnd() * n)}`;
    const queries: Record<string, { p50: number; p95: number; max: number }> = {};
    for (const g of ["region", "franchisee", "terminal", "user"] as GroupBy[])
      queries[`admin usage by ${g}, 30 days`] = await timed(o.samples, () => usageReport(db, { groupBy: g, from, to: end }));
    queries["a user's usage, 30 days"] = await timed(o.samples, () => usageReport(db, { groupBy: "user", from, to: end, userId: pick(10_000, "U") }));
    queries["a franchisee's usage by terminal, 30 days"] = await timed(o.samples, () =>
      usageReport(db, { groupBy: "terminal", from, to: end, franchiseeId: `F${1 + Math.floor(rnd() * 20)}` }),
    );
    queries["region insights, 30 days"] = await timed(o.samples, () => regionInsights(db, `R${1 + Math.floor(rnd() * 4)}`, from, end));
    queries["a franchisee's package, 1 day"] = await timed(o.samples, () => buildPackage(db, `F${1 + Math.floor(rnd() * 20)}`, end - DAY, end, end));
    queries["a franchisee's package, 30 days"] = await timed(Math.ceil(o.samples / 2), () => buildPackage(db, `F${1 + Math.floor(rnd() * 20)}`, from, end, end));

    // Keeping current at 10 000 readings/s: a minute of such readings (600 000), then the
    // writer's refresh for it, three times over; the refresh's time against the minute it covers.
    const minuteCost: number[] = [];
    const c = await db.connect();
    try {
      for (let round = 0; round < 3; round++) {
        const m0 = end + round * MIN;
        const rows = function* () {
          for (let i = 0; i < 600_000; i++) {
            const t = i % 1000;
            const ts = new Date(m0 + Math.floor(i / 1000) * 100).toISOString();
            yield `T${t}\t${ts}\tG${Math.floor(t / 50)}\t0\tf\t0\t220\t0\t${5_000_000 + i}\t\\N\t${ts}\n`;
          }
        };
        await copy(c, "COPY readings (terminal_id, ts, gateway_id, seq, relay_on, current_a, voltage_v, power_w, energy_mwh, session_id, received_at) FROM STDIN", rows());
        const r = performance.now();
        await refreshAggregates(db, m0 + 2 * MIN, { since: m0 });
        minuteCost.push(performance.now() - r);
      }
    } finally {
      // A kept data set stays as loaded, for the next run's minutes.
      if (o.keep) await c.query("DELETE FROM readings WHERE ts >= vv_ms_to_ts($1::bigint)", [end]);
      c.release();
    }
    const refreshMsPerMinute = minuteCost.reduce((a, b) => a + b, 0) / minuteCost.length;
    return {
      storage: o.storage,
      // The machine is shared: its load (1, 5, 15 min) when the queries were timed.
      loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
      fleet: { ...fleet, ...counts, sessionHours: (await db.query("SELECT count(*)::int AS n FROM session_usage")).rows[0].n },
      setupSeconds: { seed: (seeded - t0) / 1000, rollup: rollMs / 1000, firstRefresh: refreshAllMs / 1000 },
      rollupMsPerSession: rollMs / Math.max(1, rolled),
      queriesMs: queries,
      keepingCurrent: {
        readingsPerSecond: 10_000,
        refreshMsPerMinuteOfReadings: minuteCost,
        shareOfOneCore: refreshMsPerMinute / 60_000,
        // Sessions end at about this rate at this fleet size; each is rolled once.
        rollupShareOfOneCore: ((counts.sessions / (o.days * 1440)) * (rollMs / Math.max(1, rolled))) / 60_000,
      },
      goals: { queryP95Ms: 100, keepingCurrentShareOfOneCore: 0.02 },
    };
  } finally {
    await db.end();
    if (!o.keep) {
      const admin = new pg.Client({ connectionString: `${analyticsBase(o.storage)}/postgres` });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  }
}
