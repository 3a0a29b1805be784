import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import pg from "pg";
import type { Command, TerminalEvent } from "../../contracts/index.ts";
import type { UnexpectedExit } from "./cluster.ts";
import { mwh, type Fleet, type Taken } from "./fleet.ts";
import { TARIFF } from "./driver.ts";

/**
 * The invariants of issue 11, each checked from outside the platform: from what the terminals
 * took and sent (the simulator's records), what JetStream acknowledged, and what PostgreSQL and
 * the arms bucket hold. None of them uses the platform's own billing code.
 */

export interface Check {
  ok: boolean;
  /** How many things were checked. */
  checked: number;
  violations: number;
  /** A few violations, each a line a person can act on. */
  examples: string[];
  /** Every violation (not written to the results: the examples are). */
  all: string[];
}

const MAX_EXAMPLES = 8;
const check = (checked: number, bad: string[]): Check => ({ ok: bad.length === 0, checked, violations: bad.length, examples: bad.slice(0, MAX_EXAMPLES), all: bad });

export interface SessionRow {
  sessionId: string;
  userId: string;
  terminalId: string;
  state: string;
  target: { energyWh?: number; durationS?: number; amountCents?: number };
  payment: "prepaid" | "postpaid";
  heldCents: number;
  capCents: number;
  startMwh: number | null;
  endMwh: number | null;
  energyMwh: number;
  durationMs: number;
  feeCents: number;
  stopReason: string | null;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

/** A session that went on past its stop by more than one reading: when the stop was due, and how far past. */
export interface PastStop {
  dueTs: number;
  readings: number;
  wh: number;
}

/** A stretch of time in which the cutoff path (processors → control → terminal) could not work. */
export interface Window {
  from: number;
  to: number;
}

const LIVE = new Set(["authorizing", "active", "stopping"]);
/** The profile's default maximum on-current: above it, a safety stop (protocol: fault kinds). */
const MAX_ON_A = 18;

export class Checker {
  readonly pool: pg.Pool;
  /** sessionId → the distinct ends published on the session's update subject (state, end, fee). */
  readonly ends = new Map<string, Set<string>>();

  constructor(
    databaseUrl: string,
    readonly fleet: Fleet,
    readonly prefix: string,
  ) {
    this.pool = new pg.Pool({ connectionString: databaseUrl, max: 2, application_name: "chaos-checker" });
    // The run cuts the database's connections; this pool just opens new ones.
    this.pool.on("error", () => {});
  }

  /** Follows every session's updates (core NATS, as the SSE streams do) to see each end it announces. */
  watchEnds(nc: NatsConnection): void {
    nc.subscribe(`${this.prefix}.int.session.*`, {
      callback: (err, m) => {
        if (err) return;
        try {
          const u = m.json<{ session?: { sessionId: string; state: string; endedAt: number | null; feeCents: number; energyWh: number } }>();
          const s = u.session;
          if (!s || (s.state !== "completed" && s.state !== "failed")) return;
          let set = this.ends.get(s.sessionId);
          if (!set) this.ends.set(s.sessionId, (set = new Set()));
          set.add(`${s.state}@${s.endedAt}:${s.feeCents}c:${s.energyWh}Wh`);
        } catch {
          /* not a session update */
        }
      },
    });
  }

  async sessions(): Promise<SessionRow[]> {
    const r = await this.pool.query<SessionRow>(`SELECT session_id AS "sessionId", user_id AS "userId", terminal_id AS "terminalId", state, target, payment,
        held_cents::float8 AS "heldCents", cap_cents::float8 AS "capCents", start_mwh::float8 AS "startMwh", end_mwh::float8 AS "endMwh",
        energy_mwh::float8 AS "energyMwh", duration_ms::float8 AS "durationMs", fee_cents::float8 AS "feeCents", stop_reason AS "stopReason",
        vv_ts_to_ms(created_at)::float8 AS "createdAt", vv_ts_to_ms(started_at)::float8 AS "startedAt", vv_ts_to_ms(ended_at)::float8 AS "endedAt"
      FROM sessions`);
    return r.rows;
  }

  /** Every reading JetStream acknowledged up to `ackedBefore` is stored once, with its register; nothing is stored that no one sent. */
  async readingsStoredOnce(ackedBefore: number): Promise<Check & { missing: number; wrong: number; invented: number }> {
    const stored = new Map<string, bigint>();
    const r = await this.pool.query<{ k: string; mwh: string }>(
      `SELECT terminal_id || ':' || round(extract(epoch FROM ts) * 1000)::bigint AS k, energy_mwh::text AS mwh FROM readings`,
    );
    for (const row of r.rows) stored.set(row.k, BigInt(row.mwh));
    const bad: string[] = [];
    let checked = 0;
    let missing = 0;
    let wrong = 0;
    let invented = 0;
    for (const [k, a] of this.fleet.acked) {
      if (a.at >= ackedBefore) continue;
      checked++;
      const s = stored.get(k);
      if (s === undefined) {
        missing++;
        bad.push(`acknowledged reading ${k} is not stored`);
      } else if (s !== a.mwh) {
        wrong++;
        bad.push(`reading ${k} stored with ${s} mWh, acknowledged with ${a.mwh}`);
      }
    }
    for (const k of stored.keys())
      if (!this.fleet.published.has(k)) {
        invented++;
        bad.push(`stored reading ${k} was never published`);
      }
    // (terminal_id, ts) is the table's primary key: a second copy cannot exist, so "once" is "at least once" here.
    return { ...check(checked, bad), missing, wrong, invented };
  }

  /** The terminal's own answers for a session: the register and time it reported at power on and off. */
  #acks(terminalId: string, sessionId: string) {
    const t = this.fleet.terminals.get(terminalId)!;
    const find = (...types: string[]) =>
      t.events.find((e): e is TerminalEvent & { energyWh: number; ts: number } => types.includes(e.type) && "sessionId" in e && e.sessionId === sessionId);
    const on = t.commands.find((c): c is Command & { type: "power_on" } => c.type === "power_on" && c.sessionId === sessionId);
    // Power off is the acknowledgement of a command, or (protocol 1.1) the terminal's own stop at its limit.
    return { on: find("power_on_ack"), off: find("power_off_ack", "power_off"), limits: on ? { limitWh: on.limitWh, limitS: on.limitS } : null };
  }

  /**
   * Every ended session ended once and is billed exactly from its registers: start and end registers
   * are the terminal's own (its power-on and power-off answers, or the last reading seen), energy is
   * their difference, the fee is recomputed here from energy, duration and the flat tariff, capped,
   * and the ledger holds exactly the entries its end calls for.
   */
  async sessionsBilled(rows: SessionRow[]): Promise<Check & { ended: number }> {
    const ledger = new Map<string, { kind: string; balance: number; held: number; debt: number }[]>();
    const l = await this.pool.query<{ session_id: string; kind: string; b: number; h: number; d: number }>(
      `SELECT session_id, kind, balance_delta::float8 AS b, held_delta::float8 AS h, debt_delta::float8 AS d FROM wallet_ledger WHERE session_id IS NOT NULL`,
    );
    for (const e of l.rows) {
      const list = ledger.get(e.session_id) ?? [];
      list.push({ kind: e.kind, balance: e.b, held: e.h, debt: e.d });
      ledger.set(e.session_id, list);
    }
    const bad: string[] = [];
    let ended = 0;
    for (const s of rows) {
      const entries = ledger.get(s.sessionId) ?? [];
      const kinds = entries.map((e) => e.kind).sort().join(",");
      const id = `${s.sessionId} (${s.terminalId}, ${s.payment}, ${JSON.stringify(s.target)})`;
      const distinct = this.ends.get(s.sessionId);
      if (distinct && distinct.size > 1) bad.push(`${id} announced ${distinct.size} different ends: ${[...distinct].join(" | ")}`);
      if (LIVE.has(s.state)) continue;
      ended++;
      if (s.state === "failed") {
        // Power a terminal delivered for a session that ended unbilled.
        const { on, off } = this.#acks(s.terminalId, s.sessionId);
        const last = off?.energyWh ?? this.fleet.taken.get(s.terminalId)!.filter((r) => r.sessionId === s.sessionId).at(-1)?.wh;
        if (on && last !== undefined && mwh(last) > mwh(on.energyWh)) bad.push(`${id} failed (${s.stopReason}) unbilled, yet its terminal delivered ${mwh(last) - mwh(on.energyWh)} mWh`);
        const want = s.payment === "prepaid" && s.heldCents > 0 ? "hold,release" : "";
        if (kinds !== want) bad.push(`${id} failed (${s.stopReason}) with ledger entries [${kinds}], expected [${want}]`);
        if (s.feeCents !== 0) bad.push(`${id} failed but fee ${s.feeCents}`);
        continue;
      }
      const { on, off } = this.#acks(s.terminalId, s.sessionId);
      if (!on) {
        bad.push(`${id} completed but its terminal never acknowledged power on`);
        continue;
      }
      if (s.startMwh !== Number(mwh(on.energyWh)) || s.startedAt !== on.ts)
        bad.push(`${id} starts at ${s.startMwh} mWh @${s.startedAt}, the terminal acknowledged ${mwh(on.energyWh)} mWh @${on.ts}`);
      if (s.endMwh === null || s.startMwh === null) {
        bad.push(`${id} completed without registers`);
        continue;
      }
      if (s.energyMwh !== s.endMwh - s.startMwh) bad.push(`${id} energy ${s.energyMwh} mWh is not end ${s.endMwh} − start ${s.startMwh}`);
      let durationMs: number | null = null;
      if (off) {
        if (s.endMwh !== Number(mwh(off.energyWh))) bad.push(`${id} ends at ${s.endMwh} mWh, the terminal reported power off at ${mwh(off.energyWh)} mWh`);
        else durationMs = off.ts - on.ts;
      } else {
        // Never acknowledged: billed on the last register seen, which must be one the terminal read.
        const seen = this.fleet.taken.get(s.terminalId)!.find((r) => r.sessionId === s.sessionId && Number(mwh(r.wh)) === s.endMwh && r.ts - on.ts === s.durationMs);
        if (!seen) bad.push(`${id} ends at ${s.endMwh} mWh after ${s.durationMs} ms, which no reading of its terminal showed`);
        else durationMs = seen.ts - on.ts;
      }
      if (durationMs !== null && s.durationMs !== durationMs)
        bad.push(`${id} billed ${s.durationMs} ms, the terminal was on ${durationMs} ms (power-on to power-off acknowledgement)`);
      const fee = feeCents(BigInt(s.endMwh - s.startMwh), durationMs ?? s.durationMs, s.capCents);
      if (s.feeCents !== fee) bad.push(`${id} billed ${s.feeCents} cents; its registers and tariff give ${fee}`);
      if (s.target.amountCents !== undefined && s.capCents > s.target.amountCents) bad.push(`${id} cap ${s.capCents} above its amount target`);
      const want = s.payment === "prepaid" ? "capture,hold" : s.feeCents > 0 ? "debt" : "";
      if (kinds !== want) bad.push(`${id} completed with ledger entries [${kinds}], expected [${want}]`);
      const capture = entries.find((e) => e.kind === "capture");
      if (capture && (capture.balance !== -s.feeCents || capture.held !== -s.heldCents)) bad.push(`${id} captured ${-capture.balance} of fee ${s.feeCents}, released ${-capture.held} of hold ${s.heldCents}`);
      const debt = entries.find((e) => e.kind === "debt");
      if (debt && debt.debt !== s.feeCents) bad.push(`${id} debt ${debt.debt} for fee ${s.feeCents}`);
    }
    return { ...check(rows.length, bad), ended };
  }

  /** Each wallet's ledger sums to its balance, hold and debt; the hold is what its live prepaid sessions hold. */
  async ledgersBalance(): Promise<Check> {
    const r = await this.pool.query<{ user_id: string; balance: string; held: string; debt: string; lb: string; lh: string; ld: string; live_held: string }>(
      `SELECT u.user_id, u.balance_cents::text AS balance, u.held_cents::text AS held, u.debt_cents::text AS debt,
              coalesce(l.b, 0)::text AS lb, coalesce(l.h, 0)::text AS lh, coalesce(l.d, 0)::text AS ld, coalesce(s.held, 0)::text AS live_held
         FROM users u
         LEFT JOIN (SELECT user_id, sum(balance_delta) b, sum(held_delta) h, sum(debt_delta) d FROM wallet_ledger GROUP BY user_id) l USING (user_id)
         LEFT JOIN (SELECT user_id, sum(held_cents) held FROM sessions WHERE payment = 'prepaid' AND state IN ('authorizing', 'active', 'stopping') GROUP BY user_id) s USING (user_id)`,
    );
    const bad: string[] = [];
    for (const u of r.rows) {
      if (u.balance !== u.lb || u.held !== u.lh || u.debt !== u.ld)
        bad.push(`${u.user_id}: balance/held/debt ${u.balance}/${u.held}/${u.debt}, ledger sums ${u.lb}/${u.lh}/${u.ld}`);
      if (u.held !== u.live_held) bad.push(`${u.user_id}: holds ${u.held}, its live prepaid sessions hold ${u.live_held}`);
    }
    return check(r.rows.length, bad);
  }

  /**
   * No session delivered past its target, credit or safety stop by more than one reading: after the
   * first reading at which a stop was due, the terminal takes at most one more reading with power on.
   * Where the stop fell in a window in which the cloud could not cut, the terminal's own limit
   * (`limitWh`/`limitS` of its power_on) is the bound instead.
   */
  overshoot(rows: SessionRow[], down: Window[]): Check & { pastTarget: number; past: Map<string, PastStop>; worstReadings: number; worstWh: number } {
    const bad: string[] = [];
    let checked = 0;
    let pastTarget = 0;
    const past = new Map<string, PastStop>();
    let worstReadings = 0;
    let worstWh = 0;
    for (const s of rows) {
      const { on, limits } = this.#acks(s.terminalId, s.sessionId);
      if (!on) continue;
      checked++;
      const startMwh = mwh(on.energyWh);
      const readings = this.fleet.taken.get(s.terminalId)!.filter((r) => r.sessionId === s.sessionId && r.relay === "on" && r.ts > on.ts);
      const cap = Math.min(s.capCents, s.target.amountCents ?? Infinity);
      const due = (r: Taken) =>
        (s.target.energyWh !== undefined && mwh(r.wh) - startMwh >= BigInt(Math.round(s.target.energyWh * 1000))) ||
        (s.target.durationS !== undefined && r.ts - on.ts >= s.target.durationS * 1000) ||
        exactFeeReaches(mwh(r.wh) - startMwh, r.ts - on.ts, cap) ||
        r.currentA > MAX_ON_A;
      const i = readings.findIndex(due);
      if (i < 0) continue;
      const after = readings.length - 1 - i;
      const wh = readings.at(-1)!.wh - readings[i]!.wh;
      if (after > 1) {
        pastTarget++;
        past.set(s.sessionId, { dueTs: readings[i]!.ts, readings: after, wh });
      }
      worstReadings = Math.max(worstReadings, after);
      worstWh = Math.max(worstWh, wh);
      if (after <= 1) continue;
      const at = readings[i]!.ts;
      const { off } = this.#acks(s.terminalId, s.sessionId);
      const offAfter = off ? `power off ${off.ts - at} ms after the due reading` : "no power off acknowledged";
      const cloudDown = down.some((w) => at >= w.from - 2000 && at <= w.to);
      const id = `${s.sessionId} (${s.terminalId}, ${s.payment}, ${JSON.stringify(s.target)}, cap ${s.capCents}, ${s.state}/${s.stopReason})`;
      if (!cloudDown) {
        bad.push(`${id}: ${after} readings with power on after its stop was due at ${at} (+${wh.toFixed(3)} Wh, ${offAfter})`);
        continue;
      }
      const own = (r: Taken) =>
        (limits?.limitWh !== undefined && mwh(r.wh) - startMwh >= BigInt(Math.round(limits.limitWh * 1000))) || (limits?.limitS !== undefined && r.ts - on.ts >= limits.limitS * 1000);
      const j = readings.findIndex(own);
      const afterOwn = j < 0 ? 0 : readings.length - 1 - j;
      if (afterOwn > 1) bad.push(`${id}: cloud path down; ${afterOwn} readings with power on past its own limit ${JSON.stringify(limits)} (${after} past its target, ${offAfter})`);
    }
    return { ...check(checked, bad), pastTarget, past, worstReadings, worstWh: Math.round(worstWh * 1000) / 1000 };
  }

  /** Arms bucket against sessions: every active (or stopping) session armed with its own id, no ended session armed. */
  async armSnapshot(nc: NatsConnection): Promise<{ unarmed: Map<string, string>; stale: Map<string, string>; active: number }> {
    const kv = await new Kvm(nc).open(`${this.prefix}_arms`);
    const arms = new Map<string, string>();
    for await (const k of await kv.keys()) {
      const e = await kv.get(k);
      if (e && e.operation === "PUT") arms.set(k, (e.json() as { sessionId: string }).sessionId);
    }
    const r = await this.pool.query<{ session_id: string; terminal_id: string; state: string }>(`SELECT session_id, terminal_id, state FROM sessions`);
    const unarmed = new Map<string, string>();
    const stale = new Map<string, string>();
    const stateOf = new Map(r.rows.map((x) => [x.session_id, x.state]));
    let active = 0;
    for (const s of r.rows) {
      if (s.state !== "active" && s.state !== "stopping") continue;
      active++;
      if (arms.get(s.terminal_id) !== s.session_id) unarmed.set(s.session_id, `${s.session_id} on ${s.terminal_id} is ${s.state}, the arm holds ${arms.get(s.terminal_id) ?? "nothing"}`);
    }
    for (const [t, sid] of arms) {
      const st = stateOf.get(sid);
      if (st === "completed" || st === "failed") stale.set(sid, `${t} armed for ${sid}, which is ${st}`);
    }
    return { unarmed, stale, active };
  }

  /** Two snapshots a few seconds apart: a session unarmed in both (the arm is put right after commit) is a violation. */
  async armed(nc: NatsConnection, gapMs = 3000): Promise<Check> {
    const a = await this.armSnapshot(nc);
    await new Promise((r) => setTimeout(r, gapMs));
    const b = await this.armSnapshot(nc);
    const bad = [...b.unarmed].filter(([k]) => a.unarmed.has(k)).map(([, v]) => v);
    bad.push(...[...b.stale].filter(([k]) => a.stale.has(k)).map(([, v]) => v));
    return check(b.active, bad);
  }

  deaths(unexpected: UnexpectedExit[]): Check {
    return check(
      unexpected.length,
      unexpected.map((u) => `${u.process} exited (code ${u.code}, signal ${u.signal}) at ${new Date(u.at).toISOString()}: ${lastError(u.logTail)}`),
    );
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

// The flat tariff's fee in cents is exactly (mWh·E·3600 + ms·P·1000) / (3.6·10⁹):
// mWh·E/10⁶ for energy plus ms·P/(3.6·10⁶) for time.
const FEE_DEN = 3_600_000_000n;
const feeNumerator = (energyMwh: bigint, ms: number) =>
  energyMwh * BigInt(TARIFF.energyCentsPerKwh) * 3600n + BigInt(ms) * BigInt(TARIFF.timeCentsPerHour) * 1000n;

/** The flat tariff's fee, exact, rounded half up once, capped. */
export function feeCents(energyMwh: bigint, ms: number, capCents: number): number {
  const rounded = Number((2n * feeNumerator(energyMwh, ms) + FEE_DEN) / (2n * FEE_DEN));
  return Math.min(rounded, capCents);
}

/** Whether the exact (unrounded) fee has reached `cents`: a user who asks for 1 cent gets 1 cent's worth. */
export function exactFeeReaches(energyMwh: bigint, ms: number, cents: number): boolean {
  return Number.isFinite(cents) && feeNumerator(energyMwh, ms) >= BigInt(cents) * FEE_DEN;
}

function lastError(logTail: string): string {
  const lines = logTail.trim().split("\n").filter(Boolean);
  const err = [...lines].reverse().find((l) => /error|Error|ECONN|terminat/.test(l));
  return (err ?? lines.at(-1) ?? "(no log)").slice(0, 400);
}
