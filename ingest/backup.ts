import { headers as natsHeaders } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, DiscardPolicy, RetentionPolicy, StorageType, type JsMsg } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import type { Subjects } from "../contracts/index.ts";
import { runConsumer, type RunningConsumer } from "./consume.ts";
import { isNotFound } from "./streams.ts";

export interface BackupOptions {
  /** The platform's NATS (the sources). */
  nc: NatsConnection;
  /** The independent backup NATS server. */
  backupNc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  registry: Registry;
}

/** The streams copied: all collected data (readings, events, dead letters) and results (sessions, faults). */
export function backedUpStreams(s: Subjects): string[] {
  return [s.streams.telemetry, s.streams.events, s.streams.dlq, s.streams.results, s.streams.faults];
}

/**
 * Flow 111: copies every message of the platform's streams to a stream on an independent NATS
 * server, in order, without gaps or duplicates across restarts of either side. Per source stream a
 * durable consumer on the platform's server reads in order; each message is published to the
 * backup with the message id `<stream>:<seq>`; the highest copied sequence is recorded in a KV
 * bucket on the backup server after the batch is acknowledged there, and only then is the batch
 * acknowledged at the source. A batch redelivered after a crash skips what the backup already has.
 */
export async function startBackupSink(o: BackupOptions): Promise<{ stop(): Promise<void> }> {
  const { subjects: s, log } = o;
  const bjsm = await jetstreamManager(o.backupNc);
  const cfg = {
    name: s.streams.backup,
    subjects: [s.backup(">")],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    duplicate_window: 2 * 60 * 1_000_000_000,
  };
  try {
    await bjsm.streams.info(cfg.name);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await bjsm.streams.add(cfg);
  }
  const progress: KV = await new Kvm(o.backupNc).create(s.buckets.backupProgress, { history: 1, storage: StorageType.File });
  const bjs = jetstream(o.backupNc);
  const copied = new Counter({ name: "vend_backup_copied_total", help: "Messages copied to the backup store", labelNames: ["stream"], registers: [o.registry] });

  const consumers: RunningConsumer[] = [];
  for (const stream of backedUpStreams(s)) {
    const e = await progress.get(stream);
    let done = e && e.operation === "PUT" ? Number(e.string()) : 0;
    consumers.push(
      await runConsumer<JsMsg>({
        nc: o.nc,
        log,
        stream,
        durable: s.consumer(`backup_${stream.slice(s.prefix.length + 1).toLowerCase()}`),
        maxAckPending: 10_000,
        maxBatch: 1000,
        // In stream order, always: the skip below relies on it (a message handed back to the server
        // would come again after later ones were copied, and be skipped).
        retryInPlace: true,
        decode: (m) => ({ items: [m], rejects: [] }),
        deadLetter: async () => {},
        handle: async (msgs) => {
          // Redelivered copies of what is already in the backup (a crash, an ack_wait expiry) are skipped.
          const fresh = msgs.filter((m) => m.seq > done);
          await Promise.all(
            fresh.map((m) => {
              const h = natsHeaders();
              if (m.headers) for (const [k, v] of m.headers) if (k !== "Nats-Msg-Id") for (const x of v) h.append(k, x);
              h.set("Vv-Source-Stream", stream);
              h.set("Vv-Source-Seq", String(m.seq));
              h.set("Vv-Source-Time", String(Math.floor(Number(m.info.timestampNanos) / 1e6)));
              return bjs.publish(s.backup(m.subject), m.data, { msgID: `${stream}:${m.seq}`, headers: h });
            }),
          );
          if (fresh.length) {
            const top = Math.max(...fresh.map((m) => m.seq));
            await progress.put(stream, String(top));
            done = top;
            copied.inc({ stream }, fresh.length);
          }
        },
      }),
    );
  }
  log.info({ streams: backedUpStreams(s) }, "backup sink running");
  return {
    async stop() {
      await Promise.all(consumers.map((c) => c.stop()));
    },
  };
}
