import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { kvFirstOf } from "../../ingest/index.ts";
import { periodInputs, type Arm } from "../../contracts/index.ts";
import type { TariffVersion } from "../tariffs.ts";
import type { SessionRow } from "./store.ts";

/**
 * The arms bucket (terminalId → the session the cutoff processor guards there) changes only by
 * compare-and-set on the entry's revision, and only for the session it names: a late disarm of an
 * ended session finds the next session's arm and leaves it, and an arm written from a stale read
 * loses the race instead of replacing a newer one. Every write is made while the session's row
 * lock is held and its state allows it (docs/sessions-and-money.md, "The arms bucket").
 */

/** Tries of one change before giving up (each lost race means someone else changed the entry). */
const CAS_TRIES = 5;

export class ArmConflictError extends Error {
  override name = "ArmConflictError";
}

/** The entry of a terminal now: the session it arms (null when none or unreadable) and its revision. */
export interface ArmEntry {
  /** Whether an arm is there (not deleted); an unreadable one is there with no session. */
  present: boolean;
  sessionId: string | null;
  /** 0 when the key was never written. */
  revision: number;
}

export async function readArm(kv: KV, terminalId: string): Promise<ArmEntry> {
  const e = await kv.get(terminalId);
  if (!e) return { present: false, sessionId: null, revision: 0 };
  if (e.operation !== "PUT" || e.length === 0) return { present: false, sessionId: null, revision: e.revision };
  return { present: true, sessionId: sessionIdOf(e.string()), revision: e.revision };
}

/** Every terminal with an arm entry (deleted ones are not listed). */
export async function readAllArms(kv: KV): Promise<Map<string, ArmEntry>> {
  const keys: string[] = [];
  // The listing's consumer may be placed on a server that just died (ingest/first-of.ts).
  for await (const k of await kvFirstOf(() => kv.keys())) keys.push(k);
  const out = new Map<string, ArmEntry>();
  await Promise.all(keys.map(async (k) => out.set(k, await readArm(kv, k))));
  return out;
}

function sessionIdOf(json: string): string | null {
  try {
    const v = JSON.parse(json) as { sessionId?: unknown };
    return typeof v.sessionId === "string" ? v.sessionId : null;
  } catch {
    return null;
  }
}

const lostRace = (e: unknown) =>
  e instanceof JetStreamApiError &&
  (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

/**
 * Arms the terminal for `arm.sessionId`, over whatever entry is there (the caller holds the
 * session's lock and knows it is the terminal's powered session, so any other entry is stale).
 * An entry already naming the session is left as it is. Returns whether it wrote.
 */
export async function armTerminal(kv: KV, arm: Arm): Promise<boolean> {
  const value = JSON.stringify(arm);
  for (let i = 0; i < CAS_TRIES; i++) {
    const cur = await readArm(kv, arm.terminalId);
    if (cur.sessionId === arm.sessionId) return false;
    try {
      if (cur.revision === 0) await kv.create(arm.terminalId, value);
      else await kv.update(arm.terminalId, value, cur.revision);
      return true;
    } catch (e) {
      if (!lostRace(e)) throw e;
    }
  }
  throw new ArmConflictError(`the arm of ${arm.terminalId} kept changing; ${arm.sessionId} not armed`);
}

/**
 * Removes the terminal's arm if, and only if, it is `sessionId`'s. `revision` narrows it to the
 * one entry a caller saw (the check of stale arms). Returns whether it removed one.
 */
export async function disarmTerminal(kv: KV, terminalId: string, sessionId: string | null, revision?: number): Promise<boolean> {
  for (let i = 0; i < CAS_TRIES; i++) {
    const cur = await readArm(kv, terminalId);
    if (!cur.present || cur.sessionId !== sessionId) return false;
    if (revision !== undefined && cur.revision !== revision) return false;
    try {
      await kv.delete(terminalId, { previousSeq: cur.revision });
      return true;
    } catch (e) {
      if (!lostRace(e)) throw e;
    }
  }
  throw new ArmConflictError(`the arm of ${terminalId} kept changing; ${sessionId} not disarmed`);
}

/** What the cutoff processor needs of a powered session, from its power-on point. */
export function armOf(row: SessionRow, tv: TariffVersion, start: { ts: number; energyWh: number }): Arm {
  return {
    sessionId: row.sessionId,
    terminalId: row.terminalId,
    gatewayId: row.gatewayId,
    startTs: start.ts,
    startWh: start.energyWh,
    target: row.target,
    capCents: row.capCents,
    capLookahead: row.payment === "postpaid",
    tariff: { version: tv.version, timezone: tv.tariff.timezone, periods: periodInputs(tv.tariff) },
  };
}
