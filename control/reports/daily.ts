import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { instantOf, localTime, type Subjects } from "../../contracts/index.ts";
import { inTx, type Db } from "../db.ts";
import { enqueue, publishNow, type Outgoing } from "../outbox.ts";
import { buildPackage } from "./package.ts";
import { packageParts } from "./package-parts.ts";

/** A local day [from, to) in tz, as instants, and its date. */
export function localDay(year: number, month: number, day: number, tz: string): { date: string; from: number; to: number } {
  const date = `${year}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`;
  return { date, from: instantOf(year, month, day, 0, tz), to: instantOf(year, month, day, 86_400_000, tz) };
}

/** The newest local day whose packages are due at `now`: it ended at least `delayMs` ago. */
export function dueDay(now: number, tz: string, delayMs: number): { date: string; from: number; to: number } {
  const today = localTime(now - delayMs, tz);
  // Yesterday: the day before today's local midnight (noon of it, to stay clear of DST edges).
  const y = localTime(instantOf(today.year, today.month, today.day, 0, tz) - 12 * 3_600_000, tz);
  return localDay(y.year, y.month, y.day, tz);
}

/**
 * Makes the due day's package of every franchisee that has none yet and publishes it on the
 * franchisee's own subject (`<prefix>.pkg.<franchiseeId>`), in as many parts as it needs. The row and the outbox message are
 * one transaction, so each package goes out once, from whichever control instance claims it.
 * Returns how many it made.
 */
export async function publishDuePackages(o: {
  db: Db;
  nc: NatsConnection;
  subjects: Subjects;
  now: number;
  tz: string;
  delayMs: number;
  /** A franchisee whose package could not be made (tried again next round); the others go on. */
  onError?: (franchiseeId: string, err: unknown) => void;
}): Promise<number> {
  const day = dueDay(o.now, o.tz, o.delayMs);
  const due = await o.db.query<{ franchisee_id: string }>(
    `SELECT f.franchisee_id FROM franchisees f
     WHERE NOT EXISTS (SELECT 1 FROM franchisee_packages p WHERE p.franchisee_id = f.franchisee_id AND p.day = $1::date)
     ORDER BY 1`,
    [day.date],
  );
  const js = jetstream(o.nc);
  let made = 0;
  for (const { franchisee_id: f } of due.rows) {
    const out: Outgoing[] = [];
    // One franchisee's package that cannot be made (an entry no message can carry) holds back no other's.
    const claimed = await inTx(o.db, async (tx) => {
      out.length = 0;
      const r = await tx.query(
        "INSERT INTO franchisee_packages (franchisee_id, day, timezone) VALUES ($1::text, $2::date, $3::text) ON CONFLICT DO NOTHING",
        [f, day.date, o.tz],
      );
      if (!r.rowCount) return false; // another instance made it
      const pkg = await buildPackage(tx, f, day.from, day.to, o.now);
      // In parts when it is too large for one message (control/reports/package-parts.ts); a
      // package of one part keeps the message id it always had.
      for (const part of packageParts({ day: day.date, timezone: o.tz, ...pkg }))
        out.push(await enqueue(tx, o.subjects.pkg(f), part.parts === 1 ? `pkg:${f}:${day.date}` : `pkg:${f}:${day.date}:${part.part}`, part));
      return true;
    }).catch((err: unknown) => {
      if (!o.onError || !(err instanceof RangeError)) throw err;
      o.onError(f, err);
      return false;
    });
    if (!claimed) continue;
    made++;
    // What fails here stays in the outbox for its relay.
    await publishNow(o.db, js, out).catch(() => {});
  }
  return made;
}
