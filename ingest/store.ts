import type pg from "pg";
import { meterResolution, whToMwh } from "../contracts/index.ts";
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
    cols.current.push(meterReal(r.currentA));
    cols.voltage.push(meterReal(r.voltageV));
    cols.power.push(meterReal(r.powerW ?? r.currentA * r.voltageV));
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
    [
      plainArray(cols.terminal),
      plainArray(cols.ts),
      plainArray(cols.gateway),
      plainArray(cols.seq),
      `{${cols.on.map((b) => (b ? "t" : "f")).join(",")}}`,
      plainArray(cols.current),
      plainArray(cols.voltage),
      plainArray(cols.power),
      plainArray(cols.mwh),
      cols.session,
      plainArray(cols.received),
    ],
  );
  return res.rowCount ?? 0;
}

/**
 * A `real` holds no non-zero magnitude below 1.4e-45 (PostgreSQL refuses the value, and with it the
 * statement), so noise below what a meter resolves is stored as 0.
 */
function meterReal(x: number): number {
  return x < meterResolution ? 0 : x;
}

/**
 * A PostgreSQL array literal of values that need no quoting: numbers, and ids (which match
 * `idPattern`, so no commas, quotes, braces or spaces). node-postgres would escape each element,
 * which was a measurable share of the writer's time.
 */
function plainArray(values: (number | string)[]): string {
  return `{${values.join(",")}}`;
}

/**
 * The newest stored reading of each terminal: the writer's per-terminal state, restored from the
 * readings themselves (one backward index probe per terminal), so nothing extra is written per batch.
 */
export async function loadMarks(q: Q, terminalIds: string[]): Promise<Map<string, Mark>> {
  const r = await q.query<{ terminal_id: string; ts: number; seq: number; energy_mwh: number }>(
    `SELECT t.id AS terminal_id, vv_ts_to_ms(r.ts) AS ts, r.seq, r.energy_mwh
     FROM unnest($1::text[]) AS t(id)
     CROSS JOIN LATERAL (SELECT ts, seq, energy_mwh FROM readings WHERE terminal_id = t.id ORDER BY ts DESC LIMIT 1) r`,
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
