import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Subjects } from "../../contracts/index.ts";
import type { Db } from "../db.ts";
import { everyRound } from "../rounds.ts";
import { publishDuePackages } from "./daily.ts";
import { claimRound } from "../round-claims.ts";
import { whileRefreshing } from "../../ingest/index.ts";
import { WEEK_MS, WEEK_ORIGIN_MS } from "./usage.ts";

/** Sessions that ended less than this long ago wait, so the writer stores their last readings. */
const SETTLE_MS = 5000;

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/**
 * Rolls finished sessions into usage facts (sql/008_usage.sql); returns how many it rolled. The
 * usage aggregates (sql/012_usage_aggregates.sql) bucket a session by its start: on plain
 * PostgreSQL triggers keep them in the rollup's transaction; on TimescaleDB a session that
 * started before a continuous aggregate's watermark (any session longer than the policy's end
 * offset) would wait for the next policy run, so the buckets of the rolled sessions' starts are
 * refreshed here, hourly then daily (the daily aggregate reads the hourly one).
 */
export async function rollSessionUsage(db: Db, now: number, max = 500): Promise<number> {
  const r = await db.query<{ rolled: number; first: string | null; last: string | null; refresh: boolean }>(
    "SELECT rolled, vv_ts_to_ms(first_start)::text AS first, vv_ts_to_ms(last_start)::text AS last, refresh FROM vv_roll_usage(vv_ms_to_ts($1::bigint), $2::int)",
    [now - SETTLE_MS, max],
  );
  const { rolled, first, last, refresh } = r.rows[0]!;
  if (refresh && first !== null && last !== null) {
    // Each level after the one it reads: the daily ones read the hourly one, the weekly one the
    // daily one (sql/012, sql/026, sql/027).
    const levels = [["usage_hourly", HOUR_MS, 0], ["usage_daily", DAY_MS, 0], ["usage_terminal_daily", DAY_MS, 0], ["usage_user_weekly", WEEK_MS, WEEK_ORIGIN_MS]] as const;
    for (const [view, width, origin] of levels) {
      const from = Math.floor((Number(first) - origin) / width) * width + origin;
      const to = (Math.floor((Number(last) - origin) / width) + 1) * width + origin;
      // CALL takes no bind parameters: the values are numbers of ours.
      await whileRefreshing(() => db.query(`CALL refresh_continuous_aggregate('${view}', vv_ms_to_ts(${from}), vv_ms_to_ts(${to}))`));
    }
  }
  return rolled;
}

/**
 * Every control instance runs one; the rollup claims sessions with SKIP LOCKED, so instances
 * share the work and never roll a session twice. After each rollup, the franchisees' daily
 * packages that are due go out (each once, see daily.ts), looked for by one instance per interval.
 */
export function startUsageRoller(o: {
  db: Db;
  clock: () => number;
  everyMs: number;
  log: Logger;
  /** This instance's name in round claims. */
  instance: string;
  packages: { nc: NatsConnection; subjects: Subjects; tz: string; delayMs: number };
}) {
  const rollup = async () => {
    while ((await rollSessionUsage(o.db, o.clock())) === 500 && !rounds.stopped);
  };
  const packages = async () => {
    const made = await publishDuePackages({
      db: o.db,
      ...o.packages,
      now: o.clock(),
      onError: (franchiseeId, err) => o.log.error({ err, franchiseeId }, "a franchisee's daily package could not be made; tried again next round"),
    });
    if (made) o.log.info({ made }, "franchisee packages published");
  };
  const once = async () => {
    await rollup();
    await packages();
  };
  // The rollup is shared by rows (SKIP LOCKED); the packages' look over every franchisee is one
  // instance's per interval (a round claim), and each package is still made once by its row.
  const rounds = everyRound(
    o.everyMs,
    async () => {
      await rollup();
      if (await claimRound(o.db, "daily_packages", o.everyMs, o.instance)) await packages();
    },
    { log: o.log, what: "usage rollup" },
  );
  return { roll: once, stop: rounds.stop };
}
