import { headers as natsHeaders, type NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { Subjects } from "../contracts/index.ts";
import { backedUpStreams } from "./backup.ts";
import { isNotFound } from "./streams.ts";

export interface StreamRestoreOptions {
  /** The platform's NATS, where the streams are brought back (they must exist: the platform's start makes them). */
  nc: NatsConnection;
  /** The independent backup server holding `<p>_BACKUP` (ingest/backup.ts). */
  backupNc: NatsConnection;
  subjects: Subjects;
  /** Full stream names (`<P>_TELEMETRY`, …); each must be one the backup sink copies. */
  streams: string[];
  /** Only messages the source stream stored after this instant (ms), from `Vv-Source-Time`. */
  after?: number;
  /** Restore into a stream that still holds messages (they would be there twice). */
  force?: boolean;
  /** Publishes in flight at once. @default 256 */
  window?: number;
  progress?: (stream: string, restored: number) => void;
}

export class StreamRestoreError extends Error {
  override name = "StreamRestoreError";
}

/**
 * Brings lost streams back from the backup server (docs/backup-and-restore.md, "Restoring the NATS
 * streams"): the backup's messages of each stream, in the order the source stored them
 * (`Vv-Source-Seq`, which is the backup's own order: the sink copies in order), republished to
 * their original subjects with their headers, so the platform's consumers take them as they took
 * the originals (the writer stores a reading once by its key; control ignores a repeated event of
 * a session; the processors skip what their checkpoints passed). Each publish carries the message
 * id `restore:<stream>:<source seq>`, so a restore run again within the stream's duplicate window
 * adds nothing. A stream that still holds messages is refused unless `after` or `force` says what
 * to bring back: what it holds would otherwise be in it twice.
 */
export async function restoreStreams(o: StreamRestoreOptions): Promise<Record<string, number>> {
  const s = o.subjects;
  const known = new Set(backedUpStreams(s));
  const unknown = o.streams.filter((x) => !known.has(x));
  if (unknown.length) throw new StreamRestoreError(`not copied by the backup sink: ${unknown.join(", ")} (it copies ${[...known].join(", ")})`);
  const jsm = await jetstreamManager(o.nc);
  for (const name of o.streams) {
    let held: number;
    try {
      held = (await jsm.streams.info(name)).state.messages;
    } catch (e) {
      if (isNotFound(e)) throw new StreamRestoreError(`stream ${name} does not exist on the platform's NATS: start the platform once to create its streams`, { cause: e });
      throw e;
    }
    if (held > 0 && o.after === undefined && !o.force)
      throw new StreamRestoreError(`stream ${name} holds ${held} messages: restore with --after (when its loss began) or --force`);
  }

  const bjsm = await jetstreamManager(o.backupNc);
  let total: number;
  try {
    total = (await bjsm.streams.info(s.streams.backup)).state.messages;
  } catch (e) {
    if (isNotFound(e)) throw new StreamRestoreError(`the backup server has no stream ${s.streams.backup}`, { cause: e });
    throw e;
  }
  const restored: Record<string, number> = Object.fromEntries(o.streams.map((x) => [x, 0]));
  if (total === 0) return restored;

  const wanted = new Set(o.streams);
  const cut = s.backup("").length;
  const js = jetstream(o.nc);
  const consumer = await jetstream(o.backupNc).consumers.get(s.streams.backup);
  const messages = await consumer.consume({ max_messages: 1000 });
  const window = o.window ?? 256;
  let inFlight: Promise<unknown>[] = [];
  try {
    for await (const m of messages as AsyncIterable<JsMsg>) {
      const stream = m.headers?.get("Vv-Source-Stream") ?? "";
      const at = Number(m.headers?.get("Vv-Source-Time") ?? 0);
      if (wanted.has(stream) && (o.after === undefined || at > o.after)) {
        const h = natsHeaders();
        for (const [k, v] of m.headers ?? []) for (const x of v) h.append(k, x);
        inFlight.push(js.publish(m.subject.slice(cut), m.data, { msgID: `restore:${stream}:${m.headers!.get("Vv-Source-Seq")}`, headers: h }));
        restored[stream]! += 1;
        if (inFlight.length >= window) {
          await Promise.all(inFlight);
          inFlight = [];
          o.progress?.(stream, restored[stream]!);
        }
      }
      if (m.info.pending === 0) break;
    }
    await Promise.all(inFlight);
  } finally {
    messages.stop();
  }
  return restored;
}
