import type { NatsConnection } from "@nats-io/nats-core";
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import {
  maxCostCents,
  mwhToWh,
  terminalLimits,
  terminalProfileSchema,
  whToMwh,
  type ChargeRequestBody,
  type Command,
  type Cutoff,
  type Meter,
  type Session,
  type Subjects,
  type TerminalEvent,
  type TerminalLimits,
} from "../../contracts/index.ts";
import type { Buckets } from "../../ingest/index.ts";
import { isOnline } from "../live.ts";
import { cancelOtherSessionsCommands, closeCommands, createCommand, newCmdId, publishCommand, type CommandRow, type Timing } from "../commands.ts";
import { inTx, whileDbRecovers, type Db, type Tx } from "../db.ts";
import { ApiError, conflict, forbidden, notFound, paymentRequired } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import { terminalById } from "../registry.ts";
import { tariffVersion, type TariffVersion } from "../tariffs.ts";
import { chargeChecks } from "./charge-checks.ts";
import { enqueue } from "../outbox.ts";
import { resolve as resolveFault } from "../faults/store.ts";
import { ensureAndLockWallet, lockWallet, post } from "../wallet.ts";
import type { LiveReader } from "../live.ts";
import { armOf, armTerminal, disarmTerminal, readArm } from "./arms.ts";
import { finalBill } from "./bill.ts";
import { meterMessages, sessionMeter } from "./meter.ts";
import { repeatOf, transition, type SessionInput } from "./machine.ts";
import { insertSession, liveSessionOfTerminal, reservedCredit, sessionById, sessionWithTariff, stopActive, toApi, updateSession, type SessionPatch, type SessionRow } from "./store.ts";

export interface SessionServiceDeps {
  db: Db;
  nc: NatsConnection;
  subjects: Subjects;
  buckets: Buckets;
  clock: () => number;
  log: Logger;
  metrics: Metrics;
  timing: Timing;
  /** Longest session; bounds holds and the terminal's own safety limit. */
  maxSessionS: number;
  /** A terminal unseen this long is offline for new requests. */
  offlineMs: number;
  /** Terminals' live state, from the telemetry stream (control/live.ts). */
  live: LiveReader;
}

type After = () => Promise<void> | void;

/** Ended sessions kept in memory for their repeated events (about 1 KiB each). */
const ENDED_KEPT = 5000;

export type SessionService = ReturnType<typeof sessionService>;

/** The session use cases: each a transaction over the state machine, then its effects on NATS. */
export function sessionService(d: SessionServiceDeps) {
  const { db, nc, subjects: s, buckets, clock, log, metrics } = d;
  const meterOf = meterMessages(nc, s);
  /**
   * Sessions seen ended, by id (the oldest forgotten past ENDED_KEPT): an ended session's row never
   * changes again, so the answers to its repeated power_off need no read (issue 17).
   */
  const endedRows = new Map<string, SessionRow>();
  /**
   * Sessions seen past their handshake (handshake confirmed, or no longer authorizing: a state
   * never left again), by id and terminal: a handshake result can change nothing for them, so the
   * answers to a repeated handshake need no read either. Bounded like endedRows.
   */
  const pastHandshake = new Map<string, string>();
  const rememberSeen = (row: SessionRow) => {
    if (row.handshakeOk || row.state !== "authorizing") {
      pastHandshake.set(row.sessionId, `${row.gatewayId}/${row.terminalId}`);
      if (pastHandshake.size > ENDED_KEPT * 4) pastHandshake.delete(pastHandshake.keys().next().value!);
    }
    if (row.state !== "completed" && row.state !== "failed") return;
    endedRows.set(row.sessionId, row);
    if (endedRows.size > ENDED_KEPT) endedRows.delete(endedRows.keys().next().value!);
  };

  const publishUpdate = (row: SessionRow) =>
    nc.publish(s.sessionUpdates(row.sessionId), JSON.stringify({ type: "session", session: toApi(row) }));
  // One info line per state change, with the ids an operator searches by (docs/operations.md, "Logs").
  const logState = (row: SessionRow, from: string | null) =>
    log.info(
      { sessionId: row.sessionId, terminalId: row.terminalId, gatewayId: row.gatewayId, franchiseeId: row.franchiseeId, from, to: row.state, ...(row.stopReason ? { reason: row.stopReason } : {}) },
      "session state changed",
    );

  /**
   * Runs one input through the machine under the session's row lock. `guard` runs first in the
   * same transaction (used to claim an expired command once). Effects on NATS run after commit;
   * if one fails the caller's message is redelivered, and the repeat re-issues it.
   */
  async function apply(
    sessionId: string,
    makeInput: (row: SessionRow) => SessionInput | null,
    o: {
      checkpoint?: Meter | null | undefined;
      guard?: (tx: Tx) => Promise<boolean>;
    } = {},
  ): Promise<SessionRow | null> {
    const now = clock();
    const after: After[] = [];
    let from: string | null = null;
    // Idempotent (a transition is guarded by the state it starts from): done again when its
    // COMMIT's answer was lost in a failover; a run that finds the state moved changes nothing,
    // and the commands it would send are repeated by the ticker from the table.
    const row = await inTx(db, async (tx) => {
      after.length = 0;
      if (o.guard && !(await o.guard(tx))) return null;
      // The session and its tariff version in one round trip: the arm, the bill and the power-on limits use it.
      const locked = await sessionWithTariff(tx, sessionId, true);
      if (!locked) return null;
      const { row: cur, tariff: tv } = locked;
      from = cur.state;
      const input = makeInput(cur);
      if (!input) return null;
      const t = transition(cur, input, now);
      if (!t) return null;
      const { startWh, ...core } = t.patch;
      let disarm = false;
      const patch: SessionPatch = { ...core, ...(startWh !== undefined ? { startMwh: Number(whToMwh(startWh)) } : {}) };
      for (const a of t.actions) {
        switch (a.kind) {
          case "send_power_on":
          case "send_power_off": {
            // A safety power_off for a session that has ended must not switch off a newer session.
            if (a.kind === "send_power_off" && (cur.state === "failed" || cur.state === "completed")) {
              const live = await liveSessionOfTerminal(tx, cur.terminalId);
              if (live && live.sessionId !== sessionId) break;
            }
            const payload: Command =
              a.kind === "send_power_on"
                ? { type: "power_on", cmdId: newCmdId(), sessionId, ...(await powerOnLimits(tx, cur, tv, d.maxSessionS)) }
                : { type: "power_off", cmdId: newCmdId(), sessionId, reason: a.reason };
            // Power on hands the terminal to this session: repeats of an ended session's commands
            // (a power_off sent to be safe) would switch this one off.
            if (a.kind === "send_power_on") await cancelOtherSessionsCommands(tx, cur.terminalId, sessionId, now);
            const cmd = await createCommand(tx, { sessionId, terminalId: cur.terminalId, gatewayId: cur.gatewayId, payload }, now, d.timing);
            after.push(() => send(cmd));
            break;
          }
          case "close_commands":
            await closeCommands(tx, sessionId, a.types, a.status, now);
            break;
          case "release":
            if (cur.payment === "prepaid" && cur.heldCents > 0)
              await post(tx, cur.userId, "release", { held: -cur.heldCents }, { sessionId });
            break;
          case "settle": {
            const bill = finalBill(
              { sessionId, startedAt: cur.startedAt ?? now, startWh: (cur.startMwh ?? 0) / 1000, capCents: cur.capCents },
              tv.tariff,
              o.checkpoint ?? null,
              a.end,
            );
            Object.assign(patch, { energyMwh: bill.energyMwh, endMwh: bill.endMwh, durationMs: bill.durationMs, feeCents: bill.feeCents, meter: bill.meter });
            await lockWallet(tx, cur.userId);
            if (cur.payment === "prepaid") {
              await post(tx, cur.userId, "capture", { balance: -bill.feeCents, held: -cur.heldCents }, { sessionId });
            } else if (bill.feeCents > 0) {
              await post(tx, cur.userId, "debt", { debt: bill.feeCents }, { sessionId });
            }
            break;
          }
          case "arm": {
            // Armed before the state that says "active" commits: a session is never active unarmed
            // (a failed arm rolls the transition back, and the event comes again).
            await armTerminal(buckets.arms, armOf(cur, tv, { ts: a.ts, energyWh: a.energyWh }));
            // A charge started after a scan: the code scans again, so reports of it are resolved.
            // (Published by the outbox relay: no one waits on this one.)
            if (cur.state === "authorizing") await resolveFault(tx, s, { terminalId: cur.terminalId, kind: "scan_failure", at: now }, []);
            break;
          }
          case "disarm":
            disarm = true;
            break;
        }
      }
      // The arm goes only if it is this session's (a late event of an ended session finds the next
      // one's and leaves it), and before the state that ends the session commits.
      if (disarm) await disarmTerminal(buckets.arms, cur.terminalId, sessionId);
      // Any other end (a failure before power on) has no arm, unless a transaction that wrote one
      // rolled back: removed on the way, or by the arms check if NATS is away now.
      else if (patch.state === "completed" || patch.state === "failed")
        after.push(() =>
          disarmTerminal(buckets.arms, cur.terminalId, sessionId).then(
            () => {},
            (err) => log.warn({ err, sessionId }, "removing a possible arm of an ended session failed; the arms check will"),
          ),
        );
      const next = await updateSession(tx, sessionId, patch);
      if ((next.state === "completed" || next.state === "failed") && cur.state !== next.state)
        await enqueue(tx, s.sessionRecord(next.terminalId), `session:${sessionId}`, sessionRecord(next));
      return next;
    }, { idempotent: true });
    if (!row) return null;
    rememberSeen(row);
    for (const f of after) await f();
    if (row.state === "completed" || row.state === "failed") metrics.sessionsEnded.inc({ state: row.state, reason: row.stopReason ?? "" });
    if (row.state !== from) logState(row, from);
    publishUpdate(row);
    return row;
  }

  function send(cmd: Pick<CommandRow, "gatewayId" | "terminalId" | "payload">): void {
    publishCommand(nc, s, cmd);
    metrics.commandsSent.inc({ type: cmd.payload.type, repeat: "false" });
  }

  /**
   * A charge request, done again while the database recovers from a failover (whileDbRecovers):
   * the session id is drawn once, so a COMMIT whose answer was lost is found by it on the new
   * primary rather than started twice.
   */
  async function requestCharge(userId: string, body: ChargeRequestBody): Promise<Session> {
    const sessionId = `S-${randomUUID()}`;
    return whileDbRecovers(db, () => requestChargeOnce(userId, body, sessionId));
  }

  async function requestChargeOnce(userId: string, body: ChargeRequestBody, sessionId: string): Promise<Session> {
    const now = clock();
    // The terminal, the user's retirement, a safety fault and the tariff: one round trip, decided in this order.
    const checks = await chargeChecks(db, body.qr, userId, now);
    if (!checks) throw new ApiError(404, "terminal_not_found", "no terminal carries this QR code");
    const { terminal, tariff: tv } = checks;
    // Decided by people, whatever the telemetry says: checked before it.
    if (terminal.retiredAt !== null) throw conflict("terminal_retired", `terminal ${terminal.terminalId} is retired`);
    if (terminal.maintenance)
      throw conflict("terminal_maintenance", `terminal ${terminal.terminalId} is out of service for maintenance: ${terminal.maintenance.reason}`);
    if (checks.userRetired) throw new ApiError(403, "user_retired", `user ${userId} is retired`);
    const live = await d.live.read(terminal.terminalId, terminal.gatewayId, now);
    if (!isOnline(live, now, d.offlineMs))
      throw conflict("terminal_offline", `terminal ${terminal.terminalId} has sent no telemetry for ${d.offlineMs / 1000} s`);
    if (checks.safetyFault) throw conflict("terminal_faulted", `terminal ${terminal.terminalId} has an open safety fault (leak or over-current)`);
    if (!tv) throw conflict("no_tariff", `region ${terminal.regionId} has no tariff in force`);
    const maxCost = maxCostCents(body.target, tv.tariff, { maxSessionS: d.maxSessionS, maxPowerW: terminal.profile.maxPowerW });

    const { row, cmd } = await inTx<{ row: SessionRow; cmd: CommandRow | null }>(db, async (tx) => {
      const w = await ensureAndLockWallet(tx, userId);
      const busy = await liveSessionOfTerminal(tx, terminal.terminalId);
      if (busy) throw conflict("terminal_busy", `terminal ${terminal.terminalId} is in use`);
      let heldCents = 0;
      let capCents: number;
      if (body.payment === "prepaid") {
        const available = w.balanceCents - w.heldCents;
        if (available < maxCost)
          throw paymentRequired("insufficient_balance", `this request holds ${maxCost} cents; ${available} available`);
        heldCents = capCents = maxCost;
      } else {
        const remaining = w.creditLimitCents - w.debtCents - (await reservedCredit(tx, userId));
        if (remaining <= 0) throw paymentRequired("credit_exhausted", "no postpaid credit left; pay the outstanding debt or use prepaid");
        capCents = Math.min(maxCost, remaining);
      }
      let row: SessionRow;
      try {
        row = await insertSession(tx, {
          sessionId,
          userId,
          terminalId: terminal.terminalId,
          gatewayId: terminal.gatewayId,
          regionId: terminal.regionId,
          franchiseeId: terminal.franchiseeId,
          target: body.target,
          payment: body.payment,
          tariffVersion: tv.version,
          heldCents,
          capCents,
          createdAt: now,
        });
      } catch (e) {
        // Two requests raced for the terminal; the unique index let one through.
        if ((e as { code?: string }).code === "23505") throw conflict("terminal_busy", `terminal ${terminal.terminalId} is in use`);
        throw e;
      }
      if (heldCents > 0) await post(tx, userId, "hold", { held: heldCents }, { sessionId });
      const cmd = await createCommand(
        tx,
        {
          sessionId,
          terminalId: terminal.terminalId,
          gatewayId: terminal.gatewayId,
          payload: { type: "handshake", cmdId: newCmdId(), sessionId, terminalCode: terminal.terminalId },
        },
        now,
        d.timing,
      );
      return { row, cmd };
    }, {
      // The handshake of a session found committed is in the commands table: the ticker sends it.
      committed: async (tx) => {
        const row = await sessionById(tx, sessionId, false);
        return row ? { row, cmd: null } : null;
      },
    });
    if (cmd) send(cmd);
    metrics.sessionsStarted.inc({ payment: body.payment });
    logState(row, null);
    publishUpdate(row);
    return toApi(row);
  }

  async function ownSession(principal: { sub: string; role: string }, sessionId: string): Promise<SessionRow> {
    const row = await sessionById(db, sessionId);
    if (!row) throw notFound("session", sessionId);
    if (principal.role === "user" && row.userId !== principal.sub) throw forbidden("this session belongs to another user");
    if (principal.role === "franchisee" && row.franchiseeId !== principal.sub) throw forbidden("this session is on another franchisee's terminal");
    return row;
  }

  /**
   * The session, with live energy, time and fee while it runs: its newest meter message advanced to
   * the terminal's newest stored register (what the bill would say if it ended there).
   */
  async function view(row: SessionRow): Promise<Session> {
    if ((row.state !== "active" && row.state !== "stopping") || row.startedAt === null) return toApi(row);
    const tv = await tariffVersion(db, row.regionId, row.tariffVersion);
    const o = { sessionId: row.sessionId, terminalId: row.terminalId, startedAt: row.startedAt, startWh: (row.startMwh ?? 0) / 1000 };
    const meter = await sessionMeter(db, meterOf, o, tv.tariff, null);
    const m = finalBill({ ...o, capCents: row.capCents }, tv.tariff, meter, "last_seen");
    return toApi(row, { energyWh: mwhToWh(BigInt(m.energyMwh)), durationS: Math.floor(m.durationMs / 1000), feeCents: m.feeCents });
  }

  /** Whether the fee up to a terminal's own power-off reached the amount target. */
  function amountReached(row: SessionRow, tv: TariffVersion, checkpoint: Meter | null, end: { ts: number; energyWh: number }): boolean {
    const bill = finalBill(
      { sessionId: row.sessionId, startedAt: row.startedAt!, startWh: (row.startMwh ?? 0) / 1000, capCents: row.capCents },
      tv.tariff,
      checkpoint,
      end,
    );
    return "amountCents" in row.target && bill.feeCents >= row.target.amountCents;
  }

  /**
   * Does what a repeated event needs when `row` (read without its lock) already shows it handled
   * (machine.ts, repeatOf): closes the session's own commands again and removes its own arm again,
   * or, for a re-arm, only looks that the arm is there. True when that is all; false when the event
   * must go through the locked transition (a re-arm whose arm is missing, or no repeat).
   */
  async function repeatHandled(row: SessionRow, input: SessionInput): Promise<boolean> {
    const actions = repeatOf(row, input);
    if (!actions) return false;
    const now = clock();
    for (const a of actions) {
      if (a.kind === "close_commands") await closeCommands(db, row.sessionId, a.types, a.status, now);
      else if (a.kind === "disarm") await disarmTerminal(buckets.arms, row.terminalId, row.sessionId);
      else if (a.kind === "arm" && (await readArm(buckets.arms, row.terminalId)).sessionId !== row.sessionId) return false;
    }
    metrics.repeatsHandled.inc({ event: input.kind });
    return true;
  }

  return {
    requestCharge,
    ownSession,
    view,

    async get(principal: { sub: string; role: string }, sessionId: string): Promise<Session> {
      return view(await ownSession(principal, sessionId));
    },

    async stop(principal: { sub: string; role: string }, sessionId: string): Promise<void> {
      const row = await ownSession(principal, sessionId);
      if (row.state === "completed" || row.state === "failed") throw conflict("session_ended", `session ${sessionId} has ended`);
      await apply(sessionId, () => ({ kind: "stop", reason: principal.role === "admin" ? "admin" : "user_stop" }));
    },

    /**
     * A cutoff is the machine's `active + stop` transition, done in one statement (stopActive)
     * so that a single round trip stands between the decision and power_off on the wire.
     */
    async onCutoff(c: Cutoff): Promise<void> {
      const now = clock();
      const cmdId = newCmdId();
      const payload: Command = { type: "power_off", cmdId, sessionId: c.sessionId, reason: c.reason };
      const row = await stopActive(db, { sessionId: c.sessionId, terminalId: c.terminalId, reason: c.reason, cmdId, payload, now, ...d.timing });
      if (!row) return; // no longer active: stopped, ended, or a repeat of this cutoff
      send({ gatewayId: row.gatewayId, terminalId: row.terminalId, payload });
      metrics.cutoffLatency.observe((clock() - c.decidedAt) / 1000);
      logState(row, "active");
      publishUpdate(row);
    },

    async onEvent(gatewayId: string, terminalId: string, ev: TerminalEvent): Promise<void> {
      if (ev.type === "boot") return; // registers restarting matter to ingest and faults, not to sessions
      // A handshake result for a session already past it (of this terminal, on its gateway) changes nothing.
      if (ev.type === "handshake_result" && pastHandshake.get(ev.sessionId) === `${gatewayId}/${terminalId}`) {
        metrics.repeatsHandled.inc({ event: "handshake_result" });
        return;
      }
      const stop = ev.type === "power_off_ack" || ev.type === "power_off" ? ev : null;
      // A stop bills: the session is read with its tariff then (one round trip, not two).
      let row = endedRows.get(ev.sessionId) ?? null;
      let tv: TariffVersion | null = null;
      if (!row && stop) ({ row, tariff: tv } = (await sessionWithTariff(db, ev.sessionId)) ?? { row: null, tariff: null });
      else if (!row) row = await sessionById(db, ev.sessionId);
      if (!row || row.terminalId !== terminalId || row.gatewayId !== gatewayId) {
        log.warn({ gatewayId, terminalId, event: ev }, "event for a session that is not this terminal's; ignored");
        return;
      }
      rememberSeen(row);
      // A repeat the committed state already shows handled: its idempotent effects, no transaction.
      if (await repeatHandled(row, inputOf(ev, row, false))) return;
      // The terminal's stop (its own, or its answer to power_off) is the session's end: readings the
      // processor counted after it, with the relay open, are not (their time is no session's; seen
      // billed when control handled a power_off_ack late, after a crash).
      if (stop && row.startedAt !== null) tv ??= await tariffVersion(db, row.regionId, row.tariffVersion);
      const checkpoint = stop && tv && row.startedAt !== null ? await sessionMeter(db, meterOf, { ...meterKey(row), startedAt: row.startedAt }, tv.tariff, stop) : undefined;
      const amountMet = stop && tv && "amountCents" in row.target && row.startedAt !== null ? amountReached(row, tv, checkpoint ?? null, stop) : false;
      await apply(ev.sessionId, (cur) => inputOf(ev, cur, amountMet), { checkpoint });
    },

    async onCommandExpired(cmd: CommandRow, expire: (tx: Tx) => Promise<boolean>): Promise<void> {
      metrics.commandsExpired.inc({ type: cmd.type });
      // No end register from the terminal: the bill stops at the newest one the writer stored.
      const read = cmd.type === "power_off" ? await sessionWithTariff(db, cmd.sessionId) : null;
      const checkpoint =
        read && read.row.startedAt !== null
          ? await sessionMeter(db, meterOf, { ...meterKey(read.row), startedAt: read.row.startedAt }, read.tariff.tariff, null)
          : undefined;
      await apply(cmd.sessionId, () => ({ kind: "command_expired", type: cmd.type }), { checkpoint, guard: expire });
    },

    repeat(cmd: CommandRow): void {
      publishCommand(nc, s, cmd);
      metrics.commandsSent.inc({ type: cmd.type, repeat: "true" });
    },
  };
}

/** A finished session as the results stream (and the backup store) keep it. */
function sessionRecord(row: SessionRow) {
  return {
    ...toApi(row),
    regionId: row.regionId,
    franchiseeId: row.franchiseeId,
    gatewayId: row.gatewayId,
    energyMwh: row.energyMwh,
    durationMs: row.durationMs,
  };
}

/**
 * The terminal's own safety net, for when the cloud cannot reach it: never past the target, the
 * longest session, or what the session's money cap pays for (contracts/billing/limits.ts).
 */
async function powerOnLimits(tx: Tx, s: SessionRow, tv: TariffVersion, maxSessionS: number): Promise<TerminalLimits> {
  const terminal = await terminalById(tx, s.terminalId);
  const maxPowerW = terminal?.profile.maxPowerW ?? terminalProfileSchema.parse(undefined).maxPowerW;
  return terminalLimits(s.target, s.capCents, tv.tariff, { maxSessionS, maxPowerW });
}

/** The machine's input for a terminal event (boot excluded: it is not a session's). */
function inputOf(ev: Exclude<TerminalEvent, { type: "boot" }>, cur: SessionRow, amountMet: boolean): SessionInput {
  switch (ev.type) {
    case "handshake_result":
      return { kind: "handshake_result", match: ev.match, terminalCode: ev.terminalCode, expectedCode: cur.terminalId };
    case "power_on_ack":
      return { kind: "power_on_ack", ts: ev.ts, energyWh: ev.energyWh };
    case "power_off_ack":
      return { kind: "power_off_ack", ts: ev.ts, energyWh: ev.energyWh, targetMet: amountMet || targetMet(cur, ev.ts, ev.energyWh) };
    case "power_off":
      return { kind: "terminal_limit", ts: ev.ts, energyWh: ev.energyWh, targetMet: amountMet || targetMet(cur, ev.ts, ev.energyWh) };
  }
}

const meterKey = (row: SessionRow) => ({ sessionId: row.sessionId, terminalId: row.terminalId, startWh: (row.startMwh ?? 0) / 1000 });

function targetMet(s: SessionRow, ts: number, wh: number): boolean {
  const t = s.target;
  if ("energyWh" in t && s.startMwh !== null) return whToMwh(wh) - BigInt(s.startMwh) >= whToMwh(t.energyWh);
  if ("durationS" in t && s.startedAt !== null) return ts - s.startedAt >= t.durationS * 1000;
  return false;
}
