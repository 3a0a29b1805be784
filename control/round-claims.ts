import { randomUUID } from "node:crypto";
import type { Db } from "./db.ts";

/** A new control instance's name, as control_rounds records the instance that did a round. */
export const newInstanceId = () => `control-${randomUUID().slice(0, 8)}`;

/**
 * Claims the current interval of a round done once for all instances (sql/023): true for the one
 * instance whose claim moved the round's `next_at` past now (by the database's clock, which every
 * instance shares), false for the others until the next interval. The claim covers 90% of the
 * interval, so an instance's own timer, firing a little early, still finds its next one due.
 */
export async function claimRound(db: Db, name: string, everyMs: number, holder: string): Promise<boolean> {
  const r = await db.query(
    `INSERT INTO control_rounds (name, next_at, runs, holder) VALUES ($1::text, clock_timestamp() + $2::int * interval '1 millisecond', 1, $3::text)
     ON CONFLICT (name) DO UPDATE SET next_at = EXCLUDED.next_at, runs = control_rounds.runs + 1, holder = EXCLUDED.holder
     WHERE control_rounds.next_at <= clock_timestamp()
     RETURNING runs`,
    [name, Math.floor(everyMs * 0.9), holder],
  );
  return (r.rowCount ?? 0) > 0;
}
