import type { NatsConnection } from "@nats-io/nats-core";
import type pg from "pg";
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import type { Subjects } from "../contracts/index.ts";
import { runConsumer, type LateReject, type RunningConsumer } from "./consume.ts";
import { deadLetterer } from "./deadletter.ts";
import { isPermanent, permanentReason, writeIsolating } from "./isolate.ts";
import { unavailableDependency } from "./outage.ts";
import { maintainStorage, refreshAggregates, type StoragePolicy } from "./storage.ts";
import { insertReadings, loadMarks, registeredTerminals } from "./store.ts";
import { decodeTelemetry, type TelemetryItem } from "./telemetry.ts";
import { checkReading, type Mark } from "./validate.ts";

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

  // Per-terminal state, loaded on first sight: the registered gateway (looked up again after a
  // minute, so a re-homed terminal is followed) and the newest stored reading.
  const gatewayOf = new Map<string, { gw: string; at: number }>();
  const marks = new Map<string, Mark>();

  let checked: Promise<unknown> = Promise.resolve();
  const check = async (items: TelemetryItem[]): Promise<{ accepted: TelemetryItem[]; rejects: LateReject[] }> => {
    const now = o.clock();
    const unseen = [...new Set(items.map((i) => i.terminalId))].filter((t) => !(now - (gatewayOf.get(t)?.at ?? -Infinity) < 60_000));
    if (unseen.length) {
      for (const t of unseen) gatewayOf.delete(t);
      for (const [t, gw] of await registeredTerminals(db, unseen)) gatewayOf.set(t, { gw, at: now });
      for (const [t, m] of await loadMarks(db, unseen)) if (!marks.has(t)) marks.set(t, m);
    }
    // Marks move on as readings are checked, before their batch commits: with two batches in
    // flight the second is checked against the first. A batch that then fails comes again and
    // finds its readings already marked, so they are taken as late (stored, register unchecked).
    const rejects: LateReject[] = [];
    const accepted: TelemetryItem[] = [];
    for (const it of items) {
      const reject = (code: string, reason: string) =>
        rejects.push({ msg: it.msg, reject: { code, reason, part: it.part, payload: rawOf(s.prefix, it) } });
      const gw = gatewayOf.get(it.terminalId)?.gw;
      if (gw === undefined) {
        reject("unknown_terminal", `terminal ${it.terminalId} is not registered`);
        continue;
      }
      if (gw !== it.gatewayId) {
        reject("wrong_gateway", `terminal ${it.terminalId} is registered on gateway ${gw}, not ${it.gatewayId}`);
        continue;
      }
      let v: ReturnType<typeof checkReading>;
      try {
        v = checkReading(marks.get(it.terminalId), it.reading);
      } catch (e) {
        // A number no schema bound caught (OutOfRangeError): this reading's fault, not the batch's.
        if (!isPermanent(e)) throw e;
        reject("invalid", permanentReason(e));
        continue;
      }
      if (!v.ok) {
        reject(v.code, v.reason);
        continue;
      }
      accepted.push(it);
      if (v.mark) marks.set(it.terminalId, v.mark);
    }
    return { accepted, rejects };
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
      // Checks run one batch after another, in stream order; only the inserts overlap.
      const checking = checked.then(() => check(items));
      checked = checking.then(
        () => undefined,
        () => undefined,
      );
      const { accepted, rejects } = await checking;
      // One statement: committed on its own, no transaction round trips. A reading the database
      // refuses (a value its column cannot hold) is found by halving the batch and dead-lettered
      // alone; the rest are stored and acknowledged instead of the whole batch retried forever.
      const { written: n, refused } = await writeIsolating(accepted, (part) => insertReadings(db, part));
      for (const { item: it, error } of refused) {
        rejects.push({ msg: it.msg, reject: { code: "db_refused", reason: permanentReason(error), part: it.part, payload: rawOf(s.prefix, it) } });
        // Its mark may stand for a reading that was never stored: read the terminal again from the table.
        if (marks.get(it.terminalId)?.ts === it.reading.ts) marks.delete(it.terminalId);
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
