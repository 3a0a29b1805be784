import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { meterFromJson, meterMessageSchema, type Meter, type Subjects } from "../../contracts/index.ts";
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
export async function newestStoredRegister(q: Db | Tx, terminalId: string, fromTs: number): Promise<{ ts: number; energyWh: number } | null> {
  const r = await q.query<{ ts: number; energy_mwh: number }>(
    `SELECT vv_ts_to_ms(ts) AS ts, energy_mwh FROM readings
     WHERE terminal_id = $1::text AND ts >= vv_ms_to_ts($2::bigint) ORDER BY ts DESC LIMIT 1`,
    [terminalId, fromTs],
  );
  const row = r.rows[0];
  return row ? { ts: Number(row.ts), energyWh: Number(row.energy_mwh) / 1000 } : null;
}
