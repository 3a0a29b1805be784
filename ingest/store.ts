import type pg from "pg";
import { whToMwh } from "../contracts/index.ts";
import type { TelemetryItem } from "./telemetry.ts";
import type { Mark } from "./validate.ts";

type Q = pg.Pool | pg.PoolClient;

/**
 * Inserts a batch of readings in one statement (arrays unnested server-side); a (terminal, ts)
 * already stored is skipped, so redelivery and repeating gateways store each reading once.
 * Returns how many rows were new.
 */
export async function insertReadings(q: Q, items: TelemetryItem[]): Promise<number> {
  if (items.length === 0) return 0;
  const cols = {
    terminal: [] as string[],
    ts: [] as number[],
    gateway: [] as string[],
    seq: [] as number[],
    on: [] as boolean[],
    current: [] as number[],
    voltage: [] as number[],
    power: [] as number[],
    mwh: [] as string[],
    session: [] as (string | null)[],
    received: [] as number[],
  };
  for (const it of items) {
    const r = it.reading;
    cols.terminal.push(it.terminalId);
    cols.ts.push(r.ts);
    cols.gateway.push(it.gatewayId);
    cols.seq.push(r.seq);
    cols.on.push(r.state === "on");
    cols.current.push(r.currentA);
    cols.voltage.push(r.voltageV);
    cols.power.push(r.powerW ?? r.currentA * r.voltageV);
    cols.mwh.push(whToMwh(r.energyWh).toString());
    cols.session.push(r.sessionId ?? null);
    cols.received.push(it.storedAt);
  }
  const res = await q.query(
    `INSERT INTO readings (terminal_id, ts, gateway_id, seq, relay_on, current_a, voltage_v, power_w, energy_mwh, session_id, received_at)
     SELECT t, vv_ms_to_ts(ts), g, seq, o, c, v, p, e, s, vv_ms_to_ts(rcv)
     FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::boolean[], $6::real[], $7::real[], $8::real[],
                 $9::bigint[], $10::text[], $11::bigint[]) AS u(t, ts, g, seq, o, c, v, p, e, s, rcv)
     ON CONFLICT (terminal_id, ts) DO NOTHING`,
    [cols.terminal, cols.ts, cols.gateway, cols.seq, cols.on, cols.current, cols.voltage, cols.power, cols.mwh, cols.session, cols.received],
  );
  return res.rowCount ?? 0;
}

/** Moves each terminal's checkpoint forward (never back) to its newest reading of the batch. */
export async function upsertLastReadings(q: Q, latest: Map<string, { it: TelemetryItem; mark: Mark }>): Promise<void> {
  if (latest.size === 0) return;
  const v = [...latest.values()];
  await q.query(
    `INSERT INTO terminal_last_reading (terminal_id, ts, seq, relay_on, current_a, voltage_v, energy_mwh, received_at)
     SELECT t, vv_ms_to_ts(ts), seq, o, c, vo, e, vv_ms_to_ts(rcv)
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::boolean[], $5::real[], $6::real[], $7::bigint[], $8::bigint[])
       AS u(t, ts, seq, o, c, vo, e, rcv)
     ON CONFLICT (terminal_id) DO UPDATE SET ts = EXCLUDED.ts, seq = EXCLUDED.seq, relay_on = EXCLUDED.relay_on,
       current_a = EXCLUDED.current_a, voltage_v = EXCLUDED.voltage_v, energy_mwh = EXCLUDED.energy_mwh,
       received_at = EXCLUDED.received_at
     WHERE EXCLUDED.ts > terminal_last_reading.ts`,
    [
      v.map((x) => x.it.terminalId),
      v.map((x) => x.mark.ts),
      v.map((x) => x.mark.seq),
      v.map((x) => x.it.reading.state === "on"),
      v.map((x) => x.it.reading.currentA),
      v.map((x) => x.it.reading.voltageV),
      v.map((x) => x.mark.mwh.toString()),
      v.map((x) => x.it.storedAt),
    ],
  );
}

export async function loadMarks(q: Q, terminalIds: string[]): Promise<Map<string, Mark>> {
  const r = await q.query<{ terminal_id: string; ts: number; seq: number; energy_mwh: number }>(
    `SELECT terminal_id, vv_ts_to_ms(ts) AS ts, seq, energy_mwh FROM terminal_last_reading WHERE terminal_id = ANY($1::text[])`,
    [terminalIds],
  );
  return new Map(r.rows.map((x) => [x.terminal_id, { ts: Number(x.ts), seq: Number(x.seq), mwh: BigInt(x.energy_mwh) }]));
}

/** Registered terminals among the ids, with the gateway each is registered on. */
export async function registeredTerminals(q: Q, terminalIds: string[]): Promise<Map<string, string>> {
  const r = await q.query<{ terminal_id: string; gateway_id: string }>(
    "SELECT terminal_id, gateway_id FROM terminals WHERE terminal_id = ANY($1::text[])",
    [terminalIds],
  );
  return new Map(r.rows.map((x) => [x.terminal_id, x.gateway_id]));
}

export interface StoredReading {
  ts: number;
  seq: number;
  state: "on" | "off";
  currentA: number;
  voltageV: number;
  powerW: number;
  energyWh: number;
  sessionId: string | null;
  gatewayId: string;
}

/** A terminal's stored readings in [from, to), oldest first. */
export async function readingsOf(q: Q, terminalId: string, from: number, to: number, limit: number): Promise<StoredReading[]> {
  const r = await q.query(
    `SELECT vv_ts_to_ms(ts) AS ts, seq, relay_on, current_a, voltage_v, power_w, energy_mwh, session_id, gateway_id
     FROM readings WHERE terminal_id = $1::text AND ts >= vv_ms_to_ts($2::bigint) AND ts < vv_ms_to_ts($3::bigint)
     ORDER BY ts LIMIT $4::int`,
    [terminalId, from, to, limit],
  );
  return r.rows.map((x) => ({
    ts: Number(x.ts),
    seq: Number(x.seq),
    state: x.relay_on ? "on" : "off",
    currentA: x.current_a,
    voltageV: x.voltage_v,
    powerW: x.power_w,
    energyWh: Number(x.energy_mwh) / 1000,
    sessionId: x.session_id,
    gatewayId: x.gateway_id,
  }));
}
