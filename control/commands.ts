import type { NatsConnection } from "@nats-io/nats-core";
import { randomUUID } from "node:crypto";
import type { Command, Subjects } from "../contracts/index.ts";
import type { Db, Tx } from "./db.ts";
import type { CommandType } from "./sessions/machine.ts";

export interface CommandRow {
  cmdId: string;
  sessionId: string;
  terminalId: string;
  gatewayId: string;
  type: CommandType;
  payload: Command;
  attempts: number;
}

/** The command row's columns, qualified by `t` (a table alias, or the table's name). */
const colsOf = (t: string) => `${t}.cmd_id AS "cmdId", ${t}.session_id AS "sessionId", ${t}.terminal_id AS "terminalId",
  ${t}.gateway_id AS "gatewayId", ${t}.type, ${t}.payload, ${t}.attempts`;
const cols = colsOf("commands");

export const newCmdId = () => `C-${randomUUID()}`;

export interface Timing {
  retryMs: number;
  timeoutMs: number;
}

/** Records a command as pending; the caller publishes it once the transaction commits. */
export async function createCommand(
  tx: Tx,
  c: { sessionId: string; terminalId: string; gatewayId: string; payload: Command },
  now: number,
  t: Timing,
): Promise<CommandRow> {
  const r = await tx.query<CommandRow>(
    `INSERT INTO commands (cmd_id, session_id, terminal_id, gateway_id, type, payload, created_at, next_at, deadline_at)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::jsonb, vv_ms_to_ts($7::bigint),
       vv_ms_to_ts($7::bigint + $8::bigint), vv_ms_to_ts($7::bigint + $9::bigint))
     RETURNING ${cols}`,
    [c.payload.cmdId, c.sessionId, c.terminalId, c.gatewayId, c.payload.type, JSON.stringify(c.payload), now, t.retryMs, t.timeoutMs],
  );
  return r.rows[0]!;
}

export async function closeCommands(tx: Db | Tx, sessionId: string, types: CommandType[], status: "acked" | "cancelled", now: number): Promise<void> {
  await tx.query(
    `UPDATE commands SET status = $3::text, done_at = vv_ms_to_ts($4::bigint)
     WHERE session_id = $1::text AND type = ANY($2::text[]) AND status = 'pending'`,
    [sessionId, types, status, now],
  );
}

/** Cancels what is still pending for the terminal's other sessions (all of them have ended). */
export async function cancelOtherSessionsCommands(tx: Tx, terminalId: string, sessionId: string, now: number): Promise<void> {
  await tx.query(
    `UPDATE commands SET status = 'cancelled', done_at = vv_ms_to_ts($3::bigint)
     WHERE terminal_id = $1::text AND session_id <> $2::text AND status = 'pending'`,
    [terminalId, sessionId, now],
  );
}

/**
 * Claims the commands due for a repeat and moves their next time on; concurrent control
 * instances skip each other's claims, so each repeat goes out once.
 */
export async function claimDue(db: Db, now: number, t: Timing, limit = 500): Promise<CommandRow[]> {
  const r = await db.query<CommandRow>(
    `UPDATE commands c SET attempts = c.attempts + 1, next_at = vv_ms_to_ts($1::bigint + $2::bigint)
     WHERE c.cmd_id IN (
       SELECT cmd_id FROM commands
       WHERE status = 'pending' AND next_at <= vv_ms_to_ts($1::bigint) AND deadline_at > vv_ms_to_ts($1::bigint)
       ORDER BY next_at LIMIT $3::int FOR UPDATE SKIP LOCKED)
     RETURNING ${colsOf("c")}`,
    [now, t.retryMs, limit],
  );
  return r.rows;
}

/** Pending commands past their deadline (not claimed: the expiry itself locks each one). */
export async function expiredCommands(db: Db, now: number, limit = 100): Promise<CommandRow[]> {
  const r = await db.query<CommandRow>(
    `SELECT ${cols} FROM commands WHERE status = 'pending' AND deadline_at <= vv_ms_to_ts($1::bigint)
     ORDER BY deadline_at LIMIT $2::int`,
    [now, limit],
  );
  return r.rows;
}

/** Marks one command expired if it still is pending; false when another instance got there first. */
export async function expireCommand(tx: Tx, cmdId: string, now: number): Promise<boolean> {
  const r = await tx.query(
    `UPDATE commands SET status = 'expired', done_at = vv_ms_to_ts($2::bigint)
     WHERE cmd_id = (SELECT cmd_id FROM commands WHERE cmd_id = $1::text AND status = 'pending' FOR UPDATE SKIP LOCKED)`,
    [cmdId, now],
  );
  return r.rowCount === 1;
}

export function publishCommand(nc: NatsConnection, s: Subjects, c: Pick<CommandRow, "gatewayId" | "terminalId" | "payload">): void {
  nc.publish(s.cmd(c.gatewayId, c.terminalId), JSON.stringify(c.payload));
}
