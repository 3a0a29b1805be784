import { randomBytes } from "node:crypto";
import { subjects as makeSubjects } from "../../contracts/index.ts";
import { ChaosCluster, type PartName } from "./cluster.ts";
import { Driver } from "./driver.ts";
import { Fleet } from "./fleet.ts";
import { cutPostgres, laggingConsumers, liveWrittenAt, scrambleEvents, streamHeads } from "./inject.ts";
import { Checker, type Check, type PastStop, type SessionRow, type Window } from "./invariants.ts";

export const FAULTS = ["kill_control", "kill_processors", "kill_writer", "kill_nats", "cut_postgres", "scramble_events"] as const;
export type FaultName = (typeof FAULTS)[number];

const DESCRIPTION: Record<FaultName, string> = {
  kill_control: "kill -9 of the control process, started again at once",
  kill_processors: "kill -9 of the cutoff+faults process, started again at once",
  kill_writer: "kill -9 of the writer process, started again at once",
  kill_nats: "kill -9 of the nats-server, started again on the same store",
  cut_postgres: "every connection to the platform's database terminated, over and over",
  scramble_events: "terminal events duplicated and re-sent up to 30 s late, readings repeated late with and without their message id",
};

/** Faults during which the cloud cannot cut a session: the terminal's own limit is the bound. */
const CUTS_CLOUD: Record<FaultName, boolean> = {
  kill_control: true,
  kill_processors: true,
  kill_writer: false,
  kill_nats: true,
  cut_postgres: true,
  scramble_events: false,
};

export const INVARIANTS = ["readingsStoredOnce", "sessionsEndOnceBilledExactly", "ledgersBalance", "noOvershoot", "noActiveSessionUnarmed", "noUnexpectedDeath"] as const;
export type InvariantName = (typeof INVARIANTS)[number];

export interface InvariantResult {
  ok: boolean;
  checked: number;
  /** Violations first seen in this phase (earlier ones are reported where they appeared); in the final phase, all of the run's. */
  violations: number;
  examples: string[];
}

export interface PhaseResult {
  fault: FaultName | "baseline" | "final";
  description: string;
  injectedAt: string;
  /** From the fault to: control ready, every consumer past what its stream held when the fault ended, a fresh reading stored and live state written by the processors. */
  recoverMs: number | null;
  lagging?: string[];
  /** Parts that died without being killed and were started again, as a supervisor would. */
  revived: string[];
  sessions: {
    liveAtFault: number;
    startedDuringOutage: number;
    /** Sessions first seen disrupted after this fault: failed (not by a refused handshake) or ended `terminal_offline` since the fault, or past their stop by more than one reading with the stop due since the fault. */
    disrupted: number;
    /** Of those, past their stop by more than one reading; and the most energy delivered past a stop. */
    pastStop: number;
    worstPastStopWh: number;
    byOutcome: Record<string, number>;
  };
  requests: { total: number; ok: number; rejected4xx: number; errors5xx: number; noAnswer: number; chargeRequestsByStatus: Record<string, number> };
  invariants: Record<InvariantName, InvariantResult>;
  notes?: Record<string, unknown>;
}

export interface ChaosOptions {
  pgAdminUrl: string;
  /** @default a fresh name */
  database?: string;
  gateways?: number;
  terminalsPerGateway?: number;
  /** Charge requests per second. */
  rate?: number;
  warmupMs?: number;
  settleMs?: number;
  natsDownMs?: number;
  pgCutMs?: number;
  scrambleMs?: number;
  /** Latest a repeated event comes (and how long a held power_off_ack waits for the next session). @default 30000 */
  lateMaxMs?: number;
  recoverTimeoutMs?: number;
  drainTimeoutMs?: number;
  faults?: readonly FaultName[];
  log?: (line: string) => void;
  keepLogs?: boolean;
}

export interface ChaosResult {
  at: string;
  fleet: { terminals: number; gateways: number; users: number; sessionsStarted: number; sessionsEnded: number; readingsAcked: number; readingsTaken: number };
  phases: PhaseResult[];
  /** Per invariant: whether it held in every phase. */
  held: Record<InvariantName, boolean>;
  logs: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const id = randomBytes(4).toString("hex");
  const prefix = `chaos${id}`;
  const cluster = new ChaosCluster({ pgAdminUrl: o.pgAdminUrl, database: o.database ?? `vchaos_${id}`, prefix, jwtSecret: `chaos-secret-${id}-0123456789` });
  const s = makeSubjects(prefix);
  let fleet: Fleet | null = null;
  let driver: Driver | null = null;
  let checker: Checker | null = null;
  const phases: PhaseResult[] = [];
  try {
    log(`chaos: starting nats-server, database ${cluster.o.database}, and the parts as processes (logs in ${cluster.dir}/logs)`);
    await cluster.start();
    fleet = new Fleet({ natsUrl: cluster.natsUrl, prefix, gateways: o.gateways ?? 10, terminalsPerGateway: o.terminalsPerGateway ?? 20, overCurrentEvery: 25 });
    await fleet.start();
    driver = new Driver({ url: cluster.url, jwtSecret: cluster.o.jwtSecret, fleet, rate: o.rate ?? 3 });
    await driver.seed();
    checker = new Checker(cluster.databaseUrl, fleet, prefix);
    checker.watchEnds(fleet.nc);
    // Terminals are online for charge requests once the platform has seen their readings.
    await sleep(3000);
    driver.start();
    log(`chaos: ${fleet.terminals.size} terminals on ${fleet.gateways.length} gateways, users charging; warming up`);
    await sleep(o.warmupMs ?? 20_000);

    const seen = new Map<InvariantName, Set<string>>(INVARIANTS.map((n) => [n, new Set()]));
    const down: Window[] = [];
    const deathsBefore = () => cluster.unexpected.length;

    const checkAll = async (ackedBefore: number, deathsFrom: number, rows?: SessionRow[], cumulative = false): Promise<{ inv: Record<InvariantName, InvariantResult>; rows: SessionRow[]; past: Map<string, PastStop> }> => {
      // The writer may still be storing the last seconds: give it time before calling a reading lost.
      let readings = await checker!.readingsStoredOnce(ackedBefore);
      for (let i = 0; i < 30 && readings.missing > 0; i++) {
        await sleep(1000);
        readings = await checker!.readingsStoredOnce(ackedBefore);
      }
      rows ??= await checker!.sessions();
      const billed = await checker!.sessionsBilled(rows);
      const ledger = await checker!.ledgersBalance();
      const over = checker!.overshoot(rows, down);
      const armed = await checker!.armed(fleet!.nc);
      const deaths = checker!.deaths(cluster.unexpected.slice(deathsFrom));
      // A violation is reported in the phase that first shows it (a session's by its id, as its
      // figures grow while it runs); the final phase reports the whole run's.
      const keyOf = (v: string) => (v.startsWith("S-") ? v.slice(0, v.indexOf(" ")) : v);
      const fresh = (name: InvariantName, c: Check): InvariantResult => {
        const set = seen.get(name)!;
        const news = c.all.filter((v) => !set.has(keyOf(v)));
        for (const v of news) set.add(keyOf(v));
        const report = cumulative ? c.all : news;
        return { ok: report.length === 0, checked: c.checked, violations: report.length, examples: report.slice(0, 8) };
      };
      return {
        rows,
        past: over.past,
        inv: {
          readingsStoredOnce: fresh("readingsStoredOnce", readings),
          sessionsEndOnceBilledExactly: fresh("sessionsEndOnceBilledExactly", billed),
          ledgersBalance: fresh("ledgersBalance", ledger),
          noOvershoot: fresh("noOvershoot", over),
          noActiveSessionUnarmed: fresh("noActiveSessionUnarmed", armed),
          noUnexpectedDeath: fresh("noUnexpectedDeath", deaths),
        },
      };
    };

    const requestsIn = (from: number, to: number) => {
      const a = driver!.answers.filter((x) => x.at >= from && x.at <= to);
      return {
        total: a.length,
        ok: a.filter((x) => x.status >= 200 && x.status < 300).length,
        rejected4xx: a.filter((x) => x.status >= 400 && x.status < 500).length,
        errors5xx: a.filter((x) => x.status >= 500).length,
        noAnswer: a.filter((x) => x.status === 0).length,
        chargeRequestsByStatus: a
          .filter((x) => x.path === "/v1/charge-requests")
          .reduce<Record<string, number>>((m, x) => ((m[x.status] = (m[x.status] ?? 0) + 1), m), {}),
      };
    };

    // Each disrupted session is counted once, in the first phase after which it shows.
    const attributed = new Set<string>();
    const affected = (rows: SessionRow[], from: number, to: number, past: Map<string, PastStop>) => {
      const live = rows.filter((r) => r.createdAt < from && (r.endedAt === null || r.endedAt >= from));
      const during = rows.filter((r) => r.createdAt >= from && r.createdAt <= to);
      const byOutcome: Record<string, number> = {};
      let disrupted = 0;
      let pastStop = 0;
      let worstPastStopWh = 0;
      for (const r of [...live, ...during]) {
        const outcome = r.state === "completed" || r.state === "failed" ? `${r.state}:${r.stopReason}` : r.state;
        byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
      }
      for (const r of rows) {
        if (attributed.has(r.sessionId)) continue;
        const p = past.get(r.sessionId);
        const pastNow = p !== undefined && p.dueTs >= from - 2000;
        const cutShort = ((r.state === "failed" && r.stopReason !== "handshake_failed") || r.stopReason === "terminal_offline") && (r.endedAt ?? 0) >= from;
        if (!pastNow && !cutShort) continue;
        attributed.add(r.sessionId);
        disrupted++;
        if (pastNow) {
          pastStop++;
          worstPastStopWh = Math.max(worstPastStopWh, p.wh);
        }
      }
      return { liveAtFault: live.length, startedDuringOutage: during.length, disrupted, pastStop, worstPastStopWh: Math.round(worstPastStopWh * 1000) / 1000, byOutcome };
    };

    // A baseline: the invariants with nothing broken.
    {
      const t0 = Date.now();
      const d0 = deathsBefore();
      await sleep(o.settleMs ?? 10_000);
      const { inv, rows, past } = await checkAll(Date.now() - 5000, d0);
      phases.push({
        fault: "baseline",
        description: "no fault: the fleet charging for the warm-up and settle time",
        injectedAt: new Date(t0).toISOString(),
        recoverMs: 0,
        revived: [],
        sessions: affected(rows, 0, Date.now(), past),
        requests: requestsIn(t0, Date.now()),
        invariants: inv,
      });
      log(line(phases.at(-1)!));
    }

    for (const fault of o.faults ?? FAULTS) {
      const d0 = deathsBefore();
      const t0 = Date.now();
      // When the fault stops hurting; recovery is counted from the fault's start, except for the
      // scramble, a long stretch of repeats, where it is counted from the last late copy.
      let faultEnd = t0;
      const notes: Record<string, unknown> = {};
      log(`chaos: ${fault}: ${DESCRIPTION[fault]}`);
      switch (fault) {
        case "kill_control":
        case "kill_processors":
        case "kill_writer": {
          const part = fault.slice(5) as PartName;
          await cluster.killPart(part);
          await cluster.startPart(part);
          break;
        }
        case "kill_nats":
          await cluster.killNats();
          await sleep(o.natsDownMs ?? 3000);
          await cluster.startNats();
          break;
        case "cut_postgres":
          Object.assign(notes, await cutPostgres(o.pgAdminUrl, cluster.o.database, o.pgCutMs ?? 5000), { cutMs: o.pgCutMs ?? 5000 });
          break;
        case "scramble_events": {
          const r = await scrambleEvents(fleet, s, o.scrambleMs ?? 20_000, o.lateMaxMs ?? 30_000);
          // The late copies keep coming a while: recovery counts from the last of them.
          await r.pendingLate;
          Object.assign(notes, { eventsSeen: r.eventsSeen, eventsRepeated: r.eventsRepeated, lateAcksAfterNextSession: r.lateAcksAfterNextSession, readingsRepeated: r.readingsRepeated });
          faultEnd = Date.now();
          break;
        }
      }
      const injectedFor = Date.now() - t0;
      // Recovered: control answers ready, every consumer has processed what its stream held when
      // the fault ended (the restarted part is working, not just caught up before it died), and a
      // reading taken now is stored. A part that died meanwhile is started again (a supervisor's job).
      let heads = new Map<string, number>();
      for (let i = 0; i < 100 && heads.size === 0; i++) heads = await streamHeads(fleet.nc, s).catch(() => sleep(100).then(() => new Map()));
      const revived: string[] = [];
      const probeFrom = Date.now();
      let lagging: string[] = [];
      let recoveredAt: number | null = null;
      const deadline = Date.now() + (o.recoverTimeoutMs ?? 120_000);
      while (Date.now() < deadline) {
        try {
          revived.push(...(await cluster.reviveDead()));
          const ready = (await fetch(`${cluster.url}/readyz`, { signal: AbortSignal.timeout(2000) })).ok;
          if (heads.size === 0) heads = await streamHeads(fleet.nc, s);
          lagging = await laggingConsumers(fleet.nc, heads);
          const probe = [...fleet.acked].find(([, a]) => a.at > probeFrom)?.[0];
          const stored = probe ? await readingStored(checker, probe) : false;
          // The processors are consuming again (not merely caught up before they died).
          const processing = (await liveWrittenAt(fleet.nc, s)) > probeFrom;
          if (ready && lagging.length === 0 && stored && processing) {
            recoveredAt = Date.now();
            break;
          }
        } catch {
          /* not yet */
        }
        await sleep(250);
      }
      const to = recoveredAt ?? Date.now();
      if (CUTS_CLOUD[fault]) down.push({ from: t0, to });
      log(`chaos: ${fault}: ${recoveredAt ? `recovered in ${recoveredAt - faultEnd} ms` : `NOT recovered in ${o.recoverTimeoutMs ?? 120_000} ms: ${lagging.join("; ")}`}`);
      await sleep(o.settleMs ?? 10_000);
      revived.push(...(await cluster.reviveDead().catch(() => [])));
      const { inv, rows, past } = await checkAll(Date.now() - 5000, d0);
      phases.push({
        fault,
        description: DESCRIPTION[fault],
        injectedAt: new Date(t0).toISOString(),
        recoverMs: recoveredAt ? recoveredAt - faultEnd : null,
        ...(recoveredAt ? {} : { lagging }),
        revived,
        sessions: affected(rows, t0, to, past),
        requests: requestsIn(t0, to),
        invariants: inv,
        notes: { ...notes, injectedForMs: injectedFor },
      });
      log(line(phases.at(-1)!));
    }

    // Drain: no new requests; every session must end, and then everything is checked once more.
    driver.stop();
    const t0 = Date.now();
    log("chaos: draining: no new requests, waiting for every session to end");
    let rows = await checker.sessions();
    const drainEnd = Date.now() + (o.drainTimeoutMs ?? 90_000);
    while (rows.some((r) => r.state === "authorizing" || r.state === "active" || r.state === "stopping") && Date.now() < drainEnd) {
      await sleep(1000);
      await cluster.reviveDead().catch(() => {});
      rows = await checker.sessions();
    }
    const { inv } = await checkAll(Date.now() - 5000, 0, rows, true);
    const neverEnded = rows.filter((r) => r.state === "authorizing" || r.state === "active" || r.state === "stopping");
    if (neverEnded.length) {
      const b = inv.sessionsEndOnceBilledExactly;
      b.ok = false;
      b.violations += neverEnded.length;
      b.examples = [...neverEnded.slice(0, 4).map((r) => `${r.sessionId} (${r.terminalId}, ${JSON.stringify(r.target)}) still ${r.state} ${Math.round((Date.now() - r.createdAt) / 1000)} s after its request, with no new requests for ${Math.round((Date.now() - t0) / 1000)} s`), ...b.examples].slice(0, 8);
    }
    phases.push({
      fault: "final",
      description: "after the last fault: requests stopped, every session given time to end, everything checked again (the whole run's violations)",
      injectedAt: new Date(t0).toISOString(),
      recoverMs: null,
      revived: [],
      sessions: { liveAtFault: 0, startedDuringOutage: 0, disrupted: neverEnded.length, pastStop: 0, worstPastStopWh: 0, byOutcome: { neverEnded: neverEnded.length } },
      requests: requestsIn(t0, Date.now()),
      invariants: inv,
    });
    log(line(phases.at(-1)!));

    const held = Object.fromEntries(INVARIANTS.map((n) => [n, phases.every((p) => p.invariants[n].ok)])) as Record<InvariantName, boolean>;
    let taken = 0;
    for (const l of fleet.taken.values()) taken += l.length;
    return {
      at: new Date().toISOString(),
      fleet: {
        terminals: fleet.terminals.size,
        gateways: fleet.gateways.length,
        users: driver.users.prepaid.length + driver.users.postpaid.length + driver.users.tight.length,
        sessionsStarted: rows.length,
        sessionsEnded: rows.filter((r) => r.state === "completed" || r.state === "failed").length,
        readingsAcked: fleet.acked.size,
        readingsTaken: taken,
      },
      phases,
      held,
      logs: cluster.dir,
    };
  } finally {
    driver?.stop();
    await fleet?.stop().catch(() => {});
    await checker?.close().catch(() => {});
    await cluster.destroy({ keepLogs: o.keepLogs ?? true }).catch((e) => log(`chaos: cleanup failed: ${e}`));
  }
}

async function readingStored(checker: Checker, key: string): Promise<boolean> {
  const i = key.lastIndexOf(":");
  const r = await checker.pool.query(`SELECT 1 FROM readings WHERE terminal_id = $1 AND ts = 'epoch'::timestamptz + $2::bigint * interval '1 millisecond'`, [
    key.slice(0, i),
    key.slice(i + 1),
  ]);
  return r.rowCount === 1;
}

export function line(p: PhaseResult): string {
  const bad = INVARIANTS.filter((n) => !p.invariants[n].ok);
  return `chaos: ${p.fault}: recover ${p.recoverMs === null ? "-" : `${(p.recoverMs / 1000).toFixed(1)} s`}, sessions live ${p.sessions.liveAtFault} + started ${p.sessions.startedDuringOutage}, disrupted ${p.sessions.disrupted}; requests ${p.requests.total} (5xx ${p.requests.errors5xx}, no answer ${p.requests.noAnswer}); ${bad.length ? `FAILED: ${bad.map((n) => `${n} (${p.invariants[n].violations}: ${p.invariants[n].examples[0]})`).join("; ")}` : "all invariants held"}`;
}
