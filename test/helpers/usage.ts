import type pg from "pg";
import { testPlatform, type TestPlatform } from "./platform.ts";

/** A platform for analytics tests: control only (no processors, no writer), on one storage path. */
export function analyticsPlatform(engine: "plain" | "timescaledb"): Promise<TestPlatform> {
  return testPlatform(
    { VEND_STORAGE: engine, USAGE_ROLL_S: "3600" },
    { parts: { cutoff: false, faults: false, writer: false }, freshDatabase: engine === "timescaledb" },
  );
}

/** PUTs registry data through the admin API; a refusal fails the test's setup. */
export async function put(tp: TestPlatform, path: string, body: unknown): Promise<void> {
  const r = await tp.api("PUT", path, body);
  if (r.status >= 300) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.body)}`);
}

export const flatTariff = { effectiveFrom: 0, periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100, timeCentsPerHour: 0 }] };

/** A completed session written straight into the database, as the session machine would leave it. */
export async function craftSession(
  db: pg.Pool,
  s: { id: string; user: string; terminal: string; region?: string; franchisee: string; start: number; end: number; startMwh: number; energyMwh: number; feeCents: number },
): Promise<void> {
  await db.query(
    `INSERT INTO sessions (session_id, user_id, terminal_id, gateway_id, region_id, franchisee_id, state, handshake_ok, target, payment,
       tariff_version, cap_cents, start_mwh, end_mwh, energy_mwh, duration_ms, fee_cents, stop_reason, created_at, started_at, ended_at)
     VALUES ($1, $2, $3, 'G1', $4, $5, 'completed', true, '{"energyWh": 1000}', 'postpaid',
       (SELECT max(version) FROM tariff_versions WHERE region_id = $4), 100000, $6::bigint, $6::bigint + $7::bigint, $7, $9::bigint - $8::bigint, $10,
       'user_stop', vv_ms_to_ts($8), vv_ms_to_ts($8), vv_ms_to_ts($9))`,
    [s.id, s.user, s.terminal, s.region ?? "R1", s.franchisee, s.startMwh, s.energyMwh, s.start, s.end, s.feeCents],
  );
}
