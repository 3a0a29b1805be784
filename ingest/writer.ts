import type { NatsConnection } from "@nats-io/nats-core";
import type pg from "pg";
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import { whToMwh, type Subjects } from "../contracts/index.ts";
import { runConsumer, type LateReject, type RunningConsumer } from "./consume.ts";
import { deadLetterer } from "./deadletter.ts";
import { isDataError, isPermanent, permanentReason, writeIsolating, type Refused } from "./isolate.ts";
import { unavailableDependency } from "./outage.ts";
import { maintainStorage, refreshAggregates, type StoragePolicy } from "./storage.ts";
import { insertReadings, lockMarks, registeredTerminals, saveMarks, seedMarks, storedNeighbours } from "./store.ts";
import { withClient } from "./pg.ts";
import { decodeTelemetry, type TelemetryItem } from "./telemetry.ts";
import { checkLate, checkReading, type Mark, type Neighbours } from "./validate.ts";

export interface WriterOptions {
  nc: NatsConnection;
  db: pg.Pool;
  subjects: Subjects;
  log: Logger;
  registry: Registry;
  clock: () => number;
  policy: StoragePolicy;
  /** Largest batch per transaction. @default 2000 */
  maxBatch?: number;
  /** How often the telemetry aggregates are refreshed. @default 60000 */
  refreshEveryMs?: number;
  /** Seconds before an unacknowledged batch is redelivered (after a crash). @default 30 */
  ackWaitS?: number;
}

/**
 * The telemetry writer: validates every reading, dead-letters the invalid ones with their reason,
 * and stores the rest in PostgreSQL with one statement per batch, acknowledging only after commit.
 * Unacknowledged messages are bounded (max_ack_pending), which is the back-pressure: when the
 * database is slow or down, JetStream keeps the readings, not this process's memory.
 */
export async function startWriter(o: WriterOptions): Promise<{ stop(): Promise<void> }> {
  const { db, subjects: s, log } = o;
  const r = [o.registry];
  const stored = new Counter({ name: "vend_readings_stored_total", help: "Readings stored", registers: r });
  const duplicates = new Counter({ name: "vend_readings_duplicate_total", help: "Readings already stored (redelivery or repeats)", registers: r });
  const letters = new Counter({ name: "vend_readings_dead_lettered_total", help: "Readings and messages dead-lettered", labelNames: ["code"], registers: r });
  const batchSeconds = new Histogram({
    name: "vend_writer_batch_seconds",
    help: "Time to validate and commit one batch",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: r,
  });

  const maintain = () =>
    maintainStorage(db, o.policy, o.clock())
      .then((m) => log.debug(m, "storage maintained"))
      // Hourly: a round missed in an outage is made up by the next.
      .catch((err) => log[unavailableDependency(err) ? "warn" : "error"]({ err }, "storage maintenance failed; trying again in an hour"));
  await maintainStorage(db, o.policy, o.clock());
  const hourly = setInterval(maintain, 3_600_000);
  // The oldest reading stored since the last refresh: the refresh reaches back to it, so a late
  // reading is counted in the aggregates however late it came.
  let oldestStored = Infinity;
  let refreshing = false;
  const refresh = () => {
    if (refreshing) return;
    refreshing = true;
    const since = oldestStored;
    oldestStored = Infinity;
    refreshAggregates(db, o.clock(), Number.isFinite(since) ? { since } : {})
      .then((r) => log.debug(r, "telemetry aggregates refreshed"))
      .catch((err) => {
        oldestStored = Math.min(oldestStored, since);
        log.warn({ err }, "telemetry aggregate refresh failed; the views stay right, only slower");
      })
      .finally(() => (refreshing = false));
  };
  const minutely = setInterval(refresh, o.refreshEveryMs ?? 60_000);

  // Registered gateways, looked up on first sight and again after a minute (a re-homed terminal is
  // followed). The register check's marks are not kept here but in PostgreSQL (`reading_marks`),
  // locked per batch: every writer instance checks against the same marks (docs/ingest-and-storage.md).
  const gatewayOf = new Map<string, { gw: string; at: number }>();
  /** Terminals whose mark row this process has made sure of. */
  const seeded = new Set<string>();

  /** The registry's word on each item: readings of unknown terminals and from other gateways are refused. */
  const trusted = async (items: TelemetryItem[]): Promise<{ ok: TelemetryItem[]; rejects: LateReject[] }> => {
    const now = o.clock();
    const unseen = [...new Set(items.map((i) => i.terminalId))].filter((t) => !(now - (gatewayOf.get(t)?.at ?? -Infinity) < 60_000));
    if (unseen.length) {
      for (const t of unseen) gatewayOf.delete(t);
      for (const [t, gw] of await registeredTerminals(db, unseen)) gatewayOf.set(t, { gw, at: now });
    }
    const rejects: LateReject[] = [];
    const ok: TelemetryItem[] = [];
    for (const it of items) {
      const gw = gatewayOf.get(it.terminalId)?.gw;
      if (gw === undefined) rejects.push(rejectOf(it, "unknown_terminal", `terminal ${it.terminalId} is not registered`));
      else if (gw !== it.gatewayId) rejects.push(rejectOf(it, "wrong_gateway", `terminal ${it.terminalId} is registered on gateway ${gw}, not ${it.gatewayId}`));
      else ok.push(it);
    }
    return { ok, rejects };
  };
  const rejectOf = (it: TelemetryItem, code: string, reason: string): LateReject => ({ msg: it.msg, reject: { code, reason, part: it.part, payload: rawOf(s.prefix, it) } });

  // This process's batches take their marks in stream order (the next one's lock waits for the
  // previous one's), so that a newer batch never checks first and makes an older one "late".
  let locked: Promise<unknown> = Promise.resolve();

  /**
   * Checks and stores a batch in one transaction: the marks of its terminals locked, each reading
   * checked against them, the accepted stored (a reading the database refuses is found by halving
   * under savepoints), the marks moved on, then commit. Another writer's batch of the same terminals
   * waits for the commit and checks against it.
   */
  const store = async (
    items: TelemetryItem[],
    outerRejects: LateReject[],
    isolate = false,
  ): Promise<{ accepted: TelemetryItem[]; written: number; refused: Refused<TelemetryItem>[] }> => {
    const ids = [...new Set(items.map((i) => i.terminalId))].sort();
    const fresh = ids.filter((t) => !seeded.has(t));
    if (fresh.length) {
      await seedMarks(db, fresh);
      for (const t of fresh) seeded.add(t);
    }
    const rejects: LateReject[] = [];
    let retryIsolated = false;
    const result = await withClient(db, async (client) => {
      let lockedHere: () => void = () => {};
      const mine = new Promise<void>((r) => (lockedHere = r));
      const before = locked;
      locked = mine;
      try {
        await before;
        // BEGIN and the lock in one round trip.
        const marks = await lockMarks(client, ids, { begin: true }).finally(lockedHere);
        const accepted: TelemetryItem[] = [];
        const moved = new Map<string, Mark>();
        const late: TelemetryItem[] = [];
        for (const it of items) {
          let v: ReturnType<typeof checkReading>;
          try {
            v = checkReading(moved.get(it.terminalId) ?? marks.get(it.terminalId), it.reading);
          } catch (e) {
            // A number no schema bound caught (OutOfRangeError): this reading's fault, not the batch's.
            if (!isPermanent(e)) throw e;
            rejects.push(rejectOf(it, "invalid", permanentReason(e)));
            continue;
          }
          if (!v.ok) {
            rejects.push(rejectOf(it, v.code, v.reason));
            continue;
          }
          if (v.mark) {
            moved.set(it.terminalId, v.mark);
            accepted.push(it);
          } else late.push(it);
        }
        // Older than the newest stored: checked against the stored readings around it (another
        // instance may have stored the newer ones first; under the lock, none is being stored now).
        const around = await storedNeighbours(client, late.map((it) => ({ terminalId: it.terminalId, ts: it.reading.ts })));
        // And against the readings of this batch already accepted around it: they are not stored
        // yet, so the query above does not see them (a good reading and a backwards one of the same
        // terminal in one batch, behind that terminal's mark).
        late.forEach((it, i) => {
          let v = checkLate(around[i]!, it.reading);
          if (v.ok) v = checkLate(batchNeighbours(accepted, it), it.reading);
          if (v.ok) accepted.push(it);
          else rejects.push(rejectOf(it, v.code, v.reason));
        });
        let written = 0;
        let refused: Refused<TelemetryItem>[] = [];
        if (!isolate) {
          // The usual batch: one insert. A reading the database refuses aborts the transaction:
          // the batch is then done again with each part under a savepoint (below).
          try {
            written = await insertReadings(client, accepted);
          } catch (e) {
            if (!isDataError(e)) throw e;
            retryIsolated = true;
            await client.query("ROLLBACK");
            return null;
          }
        } else {
          ({ written, refused } = await writeIsolating(accepted, async (part) => {
            await client.query("SAVEPOINT part");
            let n: number;
            try {
              n = await insertReadings(client, part);
            } catch (e) {
              await client.query("ROLLBACK TO SAVEPOINT part");
              throw e;
            }
            await client.query("RELEASE SAVEPOINT part");
            return n;
          }));
        }
        // A refused reading's mark stands for nothing stored: that terminal's mark stays as it was.
        for (const { item } of refused) if (moved.get(item.terminalId)?.ts === item.reading.ts) moved.delete(item.terminalId);
        // The marks moved on and COMMIT in one round trip.
        await saveMarks(client, moved, { commit: true });
        return { accepted, written, refused };
      } catch (e) {
        lockedHere();
        await client.query("ROLLBACK").catch(() => {});
        throw e;
      }
    });
    if (retryIsolated || !result) return store(items, outerRejects, true);
    outerRejects.push(...rejects);
    return result;
  };

  const consumer: RunningConsumer = await runConsumer<TelemetryItem>({
    nc: o.nc,
    log,
    stream: s.streams.telemetry,
    durable: s.consumer("writer"),
    maxAckPending: 20_000,
    ackWaitS: o.ackWaitS ?? 30,
    maxBatch: o.maxBatch ?? 5000,
    concurrency: 3,
    decode: (m) => decodeTelemetry(s.prefix, m, { now: o.clock }),
    deadLetter: deadLetterer(o.nc, s, (code) => letters.inc({ code })),
    handle: async (items) => {
      const end = batchSeconds.startTimer();
      const { ok, rejects } = await trusted(items);
      const { accepted, written: n, refused } = await store(ok, rejects);
      for (const { item: it, error } of refused) {
        rejects.push(rejectOf(it, "db_refused", permanentReason(error)));
        gatewayOf.delete(it.terminalId);
      }
      for (const it of accepted) if (it.reading.ts < oldestStored) oldestStored = it.reading.ts;
      stored.inc(n);
      duplicates.inc(accepted.length - refused.length - n);
      end();
      return rejects;
    },
  });
  return {
    async stop() {
      clearInterval(hourly);
      clearInterval(minutely);
      await consumer.stop();
    },
  };
}

/** The dead letter's payload: the original message of a single reading, or the reading of a batch. */
function rawOf(prefix: string, it: TelemetryItem): string {
  if (it.msg.subject.startsWith(`${prefix}.tel.`)) return new TextDecoder().decode(it.msg.data);
  return JSON.stringify({ terminalId: it.terminalId, ...it.reading });
}

/** The readings of `items` of the same terminal just before and just after `it` in time. */
function batchNeighbours(items: TelemetryItem[], it: TelemetryItem): Neighbours {
  let before: TelemetryItem | null = null;
  let after: TelemetryItem | null = null;
  for (const x of items) {
    if (x.terminalId !== it.terminalId) continue;
    if (x.reading.ts < it.reading.ts && (!before || x.reading.ts > before.reading.ts)) before = x;
    if (x.reading.ts > it.reading.ts && (!after || x.reading.ts < after.reading.ts)) after = x;
  }
  const side = (x: TelemetryItem | null) => (x ? { seq: x.reading.seq, mwh: whToMwh(x.reading.energyWh) } : null);
  return { before: side(before), after: side(after) };
}
