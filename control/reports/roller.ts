import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Subjects } from "../../contracts/index.ts";
import type { Db } from "../db.ts";
import { everyRound } from "../rounds.ts";
import { publishDuePackages } from "./daily.ts";
import { claimRound } from "../round-claims.ts";

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
    const made = await publishDuePackages({ db: o.db, ...o.packages, now: o.clock() });
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
