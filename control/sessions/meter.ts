import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { advance, meterFromJson, meterMessageSchema, startMeter, type Meter, type Subjects, type Tariff } from "../../contracts/index.ts";
import { checkpointUpTo } from "./bill.ts";
import { isNotFound } from "../../ingest/index.ts";
import type { Db, Tx } from "../db.ts";

/**
 * Where the control service finds a session's meter: the newest meter message the cutoff processor
 * published for it on the CONTROL stream (`<prefix>.ctl.meter.<sessionId>`, a message of the
 * contract), read by subject; never the processor's private checkpoint bucket. Null when there is
 * none (no period boundary crossed and no cutoff yet, or no processor ran): the bill then starts at
 * the power-on point, which is exact for a session within one tariff period.
 */
export function meterMessages(nc: NatsConnection, s: Subjects) {
  let jsm: Promise<JetStreamManager> | null = null;
  return async (sessionId: string): Promise<Meter | null> => {
    jsm ??= jetstreamManager(nc).catch((e: unknown) => {
      jsm = null;
      throw e;
    });
    let m;
    try {
      m = await (await jsm).streams.getMessage(s.streams.control, { last_by_subj: s.meter(sessionId) });
    } catch (e) {
      // No message: the processor said nothing yet. Anything else (NATS away) fails the caller,
      // whose message comes again.
      if (isNotFound(e)) return null;
      throw e;
    }
    if (!m) return null;
    const p = meterMessageSchema.safeParse(m.json());
    return p.success && p.data.sessionId === sessionId ? meterFromJson(p.data.meter) : null;
  };
}

export type MeterMessages = ReturnType<typeof meterMessages>;

/**
 * The terminal's newest stored register at or after `fromTs` (the telemetry writer's `readings`):
 * where a session ends when its terminal never acknowledged power_off ("last seen"), and how far a
 * running session has come for its live view.
 */
export async function newestStoredRegister(q: Db | Tx, terminalId: string, fromTs: number, toTs: number | null = null): Promise<{ ts: number; energyWh: number } | null> {
  const r = await q.query<{ ts: number; energy_mwh: number }>(
    `SELECT vv_ts_to_ms(ts) AS ts, energy_mwh FROM readings
     WHERE terminal_id = $1::text AND ts >= vv_ms_to_ts($2::bigint) AND ($3::bigint IS NULL OR ts <= vv_ms_to_ts($3::bigint))
     ORDER BY ts DESC LIMIT 1`,
    [terminalId, fromTs, toTs],
  );
  const row = r.rows[0];
  return row ? { ts: Number(row.ts), energyWh: Number(row.energy_mwh) / 1000 } : null;
}

/**
 * A session's meter as the control service bills it: the newest meter message (cut back to the
 * terminal's own stop, if the processor counted time past it), or else the power-on point; then
 * advanced to the newest register the writer stored up to the end (or up to now). Between the
 * newest message and that register the meter crossed no period boundary the processor had seen, so
 * this equals the processor's own checkpoint when it has caught up (test/unit/meter-message.test.ts);
 * when no processor runs, it is the straight line from power-on, which is exact within one period.
 */
export async function sessionMeter(
  db: Db | Tx,
  meterOf: MeterMessages,
  o: { sessionId: string; terminalId: string; startedAt: number; startWh: number },
  tariff: Tariff,
  end: { ts: number; energyWh: number } | null,
): Promise<Meter> {
  const [message, stored] = await Promise.all([meterOf(o.sessionId), newestStoredRegister(db, o.terminalId, o.startedAt, end?.ts ?? null)]);
  return meterFrom(o, tariff, message, stored, end);
}

/** The pure part of sessionMeter. */
export function meterFrom(
  o: { sessionId: string; startedAt: number; startWh: number },
  tariff: Tariff,
  message: Meter | null,
  stored: { ts: number; energyWh: number } | null,
  end: { ts: number; energyWh: number } | null,
): Meter {
  const m = (message && end ? checkpointUpTo(message, tariff, end) : message) ?? startMeter(o.sessionId, o.startedAt, o.startWh);
  return stored && stored.ts > m.lastTs ? advance(m, tariff, stored.ts, stored.energyWh) : m;
}
