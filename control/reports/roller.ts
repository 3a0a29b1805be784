import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Subjects } from "../../contracts/index.ts";
import type { Db } from "../db.ts";
import { everyRound } from "../rounds.ts";
import { publishDuePackages } from "./daily.ts";

/** Sessions that ended less than this long ago wait, so the writer stores their last readings. */
const SETTLE_MS = 5000;

/** Rolls finished sessions into usage facts (sql/008_usage.sql); returns how many it rolled. */
export async function rollSessionUsage(db: Db, now: number, max = 500): Promise<number> {
  const r = await db.query<{ n: number }>("SELECT vv_roll_session_usage(vv_ms_to_ts($1::bigint), $2::int) AS n", [now - SETTLE_MS, max]);
  return r.rows[0]!.n;
}

/**
 * Every control instance runs one; the rollup claims sessions with SKIP LOCKED, so instances
 * share the work and never roll a session twice. After each rollup, the franchisees' daily
 * packages that are due go out (each once, see daily.ts).
 */
export function startUsageRoller(o: {
  db: Db;
  clock: () => number;
  everyMs: number;
  log: Logger;
  packages: { nc: NatsConnection; subjects: Subjects; tz: string; delayMs: number };
}) {
  const once = async () => {
    while ((await rollSessionUsage(o.db, o.clock())) === 500 && !rounds.stopped);
    const made = await publishDuePackages({ db: o.db, ...o.packages, now: o.clock() });
    if (made) o.log.info({ made }, "franchisee packages published");
  };
  const rounds = everyRound(o.everyMs, once, { log: o.log, what: "usage rollup" });
  return { roll: once, stop: rounds.stop };
}
