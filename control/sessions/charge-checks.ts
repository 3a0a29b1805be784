import type { Db } from "../db.ts";
import { SAFETY_FAULT } from "../faults/store.ts";
import { TERMINAL_COLS, toTerminal, type TerminalRecord } from "../registry.ts";
import { inForceSql, toVersion, type TariffVersion } from "../tariffs.ts";

/** What a charge request checks in the database before its transaction, read together. */
export interface ChargeChecks {
  terminal: TerminalRecord;
  /** The user is retired (403). */
  userRetired: boolean;
  /** The terminal has an open safety fault (SAFETY_FAULT: 409 terminal_faulted). */
  safetyFault: boolean;
  /** The region's tariff version in force at the request's time; null when none (409 no_tariff). */
  tariff: TariffVersion | null;
}

/**
 * The terminal carrying the QR code, whether the user is retired, whether the terminal has a
 * safety fault, and the tariff in force at `at`, in one statement: one round trip where the
 * request made four (issue 17, docs/scaling.md). The caller decides in the same order as before;
 * null when no terminal carries the code.
 */
export async function chargeChecks(db: Db, qr: string, userId: string, at: number): Promise<ChargeChecks | null> {
  const r = await db.query(
    `SELECT ${TERMINAL_COLS},
       EXISTS (SELECT 1 FROM users u WHERE u.user_id = $2::text AND u.retired_at IS NOT NULL) AS user_retired,
       EXISTS (SELECT 1 FROM faults WHERE faults.terminal_id = t.terminal_id AND ${SAFETY_FAULT}) AS safety_fault,
       CASE WHEN tv.version IS NULL THEN NULL ELSE to_jsonb(tv) END AS tariff
     FROM terminals t JOIN regions r USING (region_id)
     LEFT JOIN LATERAL (${inForceSql("t.region_id", "$3::bigint")}) tv ON true
     WHERE t.qr = $1::text`,
    [qr, userId, at],
  );
  const row = r.rows[0] as Record<string, unknown> | undefined;
  if (!row) return null;
  return {
    terminal: toTerminal(row),
    userRetired: row.user_retired === true,
    safetyFault: row.safety_fault === true,
    tariff: row.tariff ? toVersion(row.tariff as Record<string, unknown>) : null,
  };
}
