import type pg from "pg";
import { meterResolution, whToMwh } from "../contracts/index.ts";
import type { TelemetryItem } from "./telemetry.ts";
import type { Mark, Neighbours } from "./validate.ts";

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

/**
 * Makes sure every terminal has its row in `reading_marks` (sql/022), seeded from its newest
 * stored reading: run on its own, before the batch's transaction, so that the transaction takes
 * only row locks, in one order.
 */
export async function seedMarks(q: Q, terminalIds: string[]): Promise<void> {
  await q.query(
    `INSERT INTO reading_marks (terminal_id, ts, seq, energy_mwh)
     SELECT t.id, vv_ts_to_ms(r.ts), r.seq, r.energy_mwh
     FROM (SELECT DISTINCT unnest($1::text[]) AS id ORDER BY 1) t
     LEFT JOIN LATERAL (SELECT ts, seq, energy_mwh FROM readings WHERE terminal_id = t.id ORDER BY ts DESC LIMIT 1) r ON true
     ON CONFLICT (terminal_id) DO NOTHING`,
    [terminalIds],
  );
}

/**
 * The terminals' marks, locked until the transaction ends (in terminal order, so two writers
 * never wait on each other in a circle): the other writers' batches of these terminals wait, and
 * then check against what this one stored.
 */
export async function lockMarks(q: pg.PoolClient, terminalIds: string[], o: { begin?: boolean } = {}): Promise<Map<string, Mark>> {
  // Ids match idPattern (no quotes, commas or braces): a literal array, so that BEGIN can go in the same round trip.
  const sql = `SELECT terminal_id, ts, seq, energy_mwh FROM reading_marks WHERE terminal_id = ANY('${plainArray(terminalIds)}'::text[]) ORDER BY terminal_id FOR UPDATE`;
  const res = await q.query(o.begin ? `BEGIN; ${sql}` : sql);
  const r = (Array.isArray(res) ? res[res.length - 1] : res) as pg.QueryResult<{ terminal_id: string; ts: number | null; seq: number | null; energy_mwh: number | null }>;
  const out = new Map<string, Mark>();
  for (const x of r.rows) if (x.ts !== null) out.set(x.terminal_id, { ts: Number(x.ts), seq: Number(x.seq), mwh: BigInt(x.energy_mwh!) });
  return out;
}

/** The stored neighbours of each (terminal, ts): the newest reading before it and the oldest after it. */
export async function storedNeighbours(q: Q, at: { terminalId: string; ts: number }[]): Promise<Neighbours[]> {
  if (at.length === 0) return [];
  const r = await q.query<{ i: number; bseq: number | null; bmwh: number | null; aseq: number | null; amwh: number | null }>(
    `SELECT u.i, b.seq AS bseq, b.energy_mwh AS bmwh, a.seq AS aseq, a.energy_mwh AS amwh
     FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS u(t, ts, i)
     LEFT JOIN LATERAL (SELECT seq, energy_mwh FROM readings WHERE terminal_id = u.t AND ts < vv_ms_to_ts(u.ts) ORDER BY ts DESC LIMIT 1) b ON true
     LEFT JOIN LATERAL (SELECT seq, energy_mwh FROM readings WHERE terminal_id = u.t AND ts > vv_ms_to_ts(u.ts) ORDER BY ts LIMIT 1) a ON true
     ORDER BY u.i`,
    [at.map((x) => x.terminalId), at.map((x) => x.ts)],
  );
  return r.rows.map((x) => ({
    before: x.bseq === null ? null : { seq: Number(x.bseq), mwh: BigInt(x.bmwh!) },
    after: x.aseq === null ? null : { seq: Number(x.aseq), mwh: BigInt(x.amwh!) },
  }));
}

/** Moves the marks on to the newest readings this batch stored (and commits, in the same round trip, if asked). */
export async function saveMarks(q: pg.PoolClient, marks: Map<string, Mark>, o: { commit?: boolean } = {}): Promise<void> {
  const commit = o.commit ? "COMMIT" : "";
  if (marks.size === 0) {
    if (commit) await q.query(commit);
    return;
  }
  const ms = [...marks.values()];
  // Ids match idPattern, the rest are integers: literal arrays, so that COMMIT can go in the same round trip.
  await q.query(
    `UPDATE reading_marks m SET ts = u.ts, seq = u.seq, energy_mwh = u.e
     FROM unnest('${plainArray([...marks.keys()])}'::text[], '${plainArray(ms.map((x) => x.ts))}'::bigint[],
                 '${plainArray(ms.map((x) => x.seq))}'::bigint[], '${plainArray(ms.map((x) => x.mwh.toString()))}'::bigint[]) AS u(t, ts, seq, e)
     WHERE m.terminal_id = u.t${commit ? "; COMMIT" : ""}`,
  );
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
