import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { inTx, type Db } from "../db.ts";
import { tariffVersion } from "../tariffs.ts";
import { armOf, armTerminal, disarmTerminal, readAllArms } from "./arms.ts";
import { poweredSessions, sessionIfFree } from "./store.ts";

export interface ArmsCheck {
  /** Powered sessions found unarmed (or under another session's arm) and armed again. */
  rearmed: number;
  /** Arms of sessions that are not powered (ended, never started, unknown) removed. */
  removed: number;
}

const powered = (state: string) => state === "active" || state === "stopping";

/**
 * Brings the arms bucket back to what the sessions say: every powered session armed under its own
 * id, no arm of another. The session transactions keep it so on their own; this repairs what they
 * cannot see: an arm lost with the bucket (a NATS store lost or restored), a disarm whose
 * transition then rolled back, an arm written by a transaction that then failed, an old
 * instance's unconditional write. Each repair runs under the session's row lock with the same
 * compare-and-set as the transitions, so it never undoes one in flight (a locked session is left
 * to its transaction, and looked at again next round).
 */
export async function checkArms(db: Db, kv: KV, log: Logger): Promise<ArmsCheck> {
  const out: ArmsCheck = { rearmed: 0, removed: 0 };
  const [sessions, arms] = await Promise.all([poweredSessions(db), readAllArms(kv)]);
  const poweredOn = new Map(sessions.map((s) => [s.terminalId, s.sessionId]));

  for (const { sessionId, terminalId } of sessions) {
    if (arms.get(terminalId)?.sessionId === sessionId) continue;
    const done = await inTx(db, async (tx) => {
      const row = await sessionIfFree(tx, sessionId);
      if (row === null || row === "locked" || !powered(row.state) || row.startedAt === null || row.startMwh === null) return false;
      const tv = await tariffVersion(tx, row.regionId, row.tariffVersion);
      return armTerminal(kv, armOf(row, tv, { ts: row.startedAt, energyWh: row.startMwh / 1000 }));
    });
    if (done) {
      out.rearmed++;
      log.warn({ sessionId, terminalId }, "a powered session was not armed; armed again");
    }
  }

  for (const [terminalId, arm] of arms) {
    if (!arm.present || poweredOn.has(terminalId)) continue;
    const done = await inTx(db, async (tx) => {
      const row = arm.sessionId === null ? null : await sessionIfFree(tx, arm.sessionId);
      if (row === "locked" || (row !== null && row.terminalId === terminalId && powered(row.state))) return false;
      return disarmTerminal(kv, terminalId, arm.sessionId, arm.revision);
    });
    if (done) {
      out.removed++;
      log.warn({ sessionId: arm.sessionId, terminalId }, "an arm of a session that is not powered; removed");
    }
  }
  return out;
}
