import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import { followBucket } from "./follow.ts";
import { assignPartitions } from "./partitions.ts";
import type { RunningProcessor } from "./host.ts";

/**
 * How a partition came to this instance: `clean` when nobody held it or its owner released it
 * (drained and acknowledged everything first), `takeover` when its owner stopped renewing (dead, or
 * cut off): its consumer may hold messages the dead owner had in hand (docs/scaling.md).
 */
export type Acquired = "clean" | "takeover";

export interface PartitionLeaseOptions {
  /** The leases bucket (`<p>_leases`): `member.<instance>` heartbeats and `partition.<k>` leases. */
  kv: KV;
  count: number;
  /** Unique per running process (a restarted process is a new member). */
  instanceId: string;
  /** A member or lease not renewed for this long (as this instance sees it) is dead. */
  leaseMs: number;
  /** @default leaseMs / 5 */
  renewMs?: number;
  log: Logger;
  /** A steady clock for lease ages (not the reading clock). @default performance.now-based */
  now?: () => number;
  /**
   * Asks whether an instance that missed a heartbeat still runs: false when it surely does not (its
   * connection is gone: a process killed closes its sockets at once), so its partitions are taken
   * without waiting out the lease; true or null (no answer in time) when it may. @default null
   */
  alive?(instanceId: string): Promise<boolean | null>;
  /**
   * Whether this instance's NATS connection is up now, so that it answers the others' `alive` asks
   * (and they take none of its partitions). An owner whose renewals fail while it is connected
   * keeps its partitions: JetStream is electing a leader (a server died) and nobody can write the
   * bucket meanwhile, so nobody can take them either. @default never (renewals failing for 0.6 of
   * the lease stop the partitions, connected or not)
   */
  connected?(): boolean;
  /**
   * Starts partition k's processors; called only while this instance holds its lease. `previous`:
   * what the lease said when taken over (its owner's `describe`), for the successor; `revision`:
   * the lease's revision as taken (it only grows, in one bucket: a generation number without clocks).
   */
  start(index: number, how: Acquired, previous: Record<string, unknown> | undefined, revision: number): Promise<RunningProcessor>;
  /** What the owner writes into partition k's lease with each renewal (for a successor). @default nothing */
  describe?(index: number): Record<string, unknown>;
}

export interface PartitionLeases {
  /** The partitions whose processors run here now. */
  owned(): number[];
  /** Stops every partition here and releases their leases (a hand-over to the others at once). */
  stop(): Promise<void>;
}

interface Slot {
  revision: number;
  renewedAt: number;
  running: Promise<RunningProcessor | null>;
  releasing: boolean;
  stopped: boolean;
  stopping?: Promise<void>;
}

interface Seen {
  owner: string | null;
  revision: number;
  /** When this instance saw the entry change (or, for entries found at start, when it was written). */
  seenAt: number;
}

const partitionKey = (k: number) => `partition.${k}`;
const memberKey = (id: string) => `member.${id}`;

/**
 * Ownership of the partitions by the live instances, in a KV bucket:
 *
 * - each instance heartbeats `member.<id>` every `renewMs`; the members whose entry changed within
 *   `leaseMs` are alive, and `assignPartitions` says who should own what;
 * - an instance holds `partition.<k>` by compare-and-set: it creates it (absent or released), or
 *   overwrites it at the revision it saw once that revision is `leaseMs` old (the owner is dead),
 *   and renews it at its own revision every `renewMs`; a renewal refused (someone took it) or
 *   failing for most of `leaseMs` stops its processors (fencing: it may be the one cut off);
 * - a partition that should go to another live member (one joined) is handed over: its processors
 *   drain (the batch in hand finished and acknowledged), then the lease is deleted at its revision,
 *   and the new owner creates it. No two instances step a partition at once, barring a paused owner
 *   that comes back after `leaseMs` (then the cutoff's message id and the control service's
 *   "only an active session is cut" keep it to one cut).
 *
 * Ages are measured on this instance's own steady clock from when it saw each change, so no two
 * machines' clocks are compared; entries found at start count from their write time on the server
 * (a clock skew under `leaseMs - renewMs` is harmless).
 */
export async function runPartitionLeases(o: PartitionLeaseOptions): Promise<PartitionLeases> {
  const now = o.now ?? (() => performance.timeOrigin + performance.now());
  const renewMs = o.renewMs ?? Math.max(100, Math.floor(o.leaseMs / 5));
  const seen = new Map<string, Seen>();
  const slots = new Map<number, Slot>();
  /** Members that missed a heartbeat and whose connection is gone. */
  const gone = new Set<string>();
  /** When each member that missed a heartbeat last answered `alive` (it runs, its heartbeats did not get through). */
  const answered = new Map<string, number>();
  const value = (k: number) => JSON.stringify({ ...o.describe?.(k), owner: o.instanceId });

  let loaded!: () => void;
  const ready = new Promise<void>((r) => (loaded = r));
  const watch = await followBucket(o.kv, {
    log: o.log,
    what: "leases",
    onEntry: (e: KvWatchEntry) => {
      if (e.key.startsWith("member.")) gone.delete(e.key.slice("member.".length));
      if (e.operation !== "PUT" || e.length === 0) seen.delete(e.key);
      else seen.set(e.key, { owner: ownerOf(e), revision: e.revision, seenAt: e.isUpdate ? now() : Math.min(now(), e.created.getTime()) });
      if (e.isUpdate || e.delta === 0) loaded();
    },
  });
  if ((await o.kv.status()).values === 0) loaded();
  await Promise.race([ready, new Promise((r) => setTimeout(r, o.leaseMs))]);

  const alive = (s: Seen | undefined, at: number) => s !== undefined && at - s.seenAt <= o.leaseMs;
  /**
   * A member (and its leases) is live when its heartbeat (renewal) is recent, or when it answered
   * `alive` within the lease although they did not arrive: a JetStream election after a server's
   * death stops every write to the bucket (and the watch that reports them) for seconds, and no
   * one is to be taken for dead then.
   */
  const answeredWithin = (id: string | null, at: number) => id !== null && at - (answered.get(id) ?? -Infinity) <= o.leaseMs;

  // Stops in flight, so that stop() waits for those of partitions already given up too.
  const stops = new Set<Promise<void>>();
  const stopSlot = (k: number, slot: Slot): Promise<void> => {
    if (!slot.stopping) {
      const p = slot.running
        .then((p) => p?.stop())
        .catch((err) => o.log.error({ err, partition: k }, "partition did not stop cleanly"))
        .finally(() => {
          slot.stopped = true;
          stops.delete(p);
        });
      stops.add(p);
      slot.stopping = p;
    }
    return slot.stopping;
  };

  /** Lost the lease (refused, or not renewed in time): stop at once, and do not touch the lease. */
  const lose = (k: number, slot: Slot, why: string) => {
    o.log.warn({ partition: k, why }, "partition lease lost; stopping its processors");
    slots.delete(k);
    void stopSlot(k, slot);
  };

  const acquire = async (k: number, at: number): Promise<void> => {
    const key = partitionKey(k);
    let how: Acquired;
    let revision: number;
    let s: Seen | undefined;
    let previous: Record<string, unknown> | undefined;
    try {
      // The lease as it is now, not as the watch last told (a watch can lag behind a server's
      // death): a revision newer than the one seen is a renewal, so its owner is alive.
      const cur = await o.kv.get(key);
      if (!cur || cur.operation !== "PUT" || cur.length === 0) {
        revision = await o.kv.create(key, value(k));
        how = "clean";
      } else {
        const before = seen.get(key);
        s = before && before.revision === cur.revision ? before : { owner: ownerOf(cur), revision: cur.revision, seenAt: before ? at : Math.min(at, cur.created.getTime()) };
        seen.set(key, s);
        // A live owner hands it over when it sees us.
        if (s.owner !== o.instanceId && !gone.has(s.owner ?? "") && (alive(s, at) || answeredWithin(s.owner, at))) return;
        previous = leaseValue(cur);
        revision = await o.kv.update(key, value(k), cur.revision);
        how = "takeover";
      }
    } catch (err) {
      // Someone else was quicker (or NATS is away): the next round looks again.
      if (!isCasRefusal(err)) o.log.warn({ err, partition: k }, "partition lease not taken");
      return;
    }
    o.log.info({ partition: k, how, previous: s?.owner ?? null }, "partition acquired");
    const slot: Slot = { revision, renewedAt: at, releasing: false, stopped: false, running: Promise.resolve(null) };
    slot.running = o.start(k, how, previous, revision).catch((err) => {
      // Released at the next round (nothing runs), and taken again by whoever should own it.
      o.log.error({ err, partition: k }, "partition processors did not start; releasing it");
      slot.releasing = true;
      return null;
    });
    slots.set(k, slot);
    void slot.running.then((p) => {
      if (!p) void stopSlot(k, slot);
    });
  };

  const round = async (): Promise<void> => {
    const at = now();
    await o.kv.put(memberKey(o.instanceId), JSON.stringify({ at: Date.now() })).catch((err) => o.log.warn({ err }, "membership heartbeat failed"));
    // A member a heartbeat late is asked whether it still runs: a killed one is known at once.
    await Promise.all(
      [...seen].map(async ([key, s]) => {
        const id = key.slice("member.".length);
        if (!key.startsWith("member.") || id === o.instanceId || gone.has(id) || at - s.seenAt < renewMs * 1.5) return;
        const answer = await o.alive?.(id);
        if (answer === true) answered.set(id, at);
        if (answer === false) {
          o.log.warn({ member: id }, "processor instance gone (its connection closed); taking its partitions without waiting out the lease");
          gone.add(id);
          answered.delete(id);
        }
      }),
    );
    const memberIds = [...seen].filter(([key]) => key.startsWith("member.")).map(([key, s]) => [key.slice("member.".length), s] as const);
    const members = [o.instanceId, ...memberIds.filter(([id, s]) => !gone.has(id) && (alive(s, at) || answeredWithin(id, at))).map(([id]) => id)];
    const desired = new Set(assignPartitions(members, o.count).get(o.instanceId) ?? []);
    // Members that left without a word (killed) leave a key each: forgotten after ten lease times.
    for (const [key, s] of seen) {
      if (key.startsWith("member.") && at - s.seenAt > o.leaseMs * 10) {
        seen.delete(key);
        gone.delete(key.slice("member.".length));
        answered.delete(key.slice("member.".length));
        await o.kv.delete(key, { previousSeq: s.revision }).catch(() => {});
      }
    }
    await Promise.all(
      [...slots].map(async ([k, slot]) => {
        if (slot.releasing && slot.stopped) {
          await o.kv.delete(partitionKey(k), { previousSeq: slot.revision }).catch((err) => o.log.warn({ err, partition: k }, "lease not released; it will expire"));
          if (slots.get(k) === slot) slots.delete(k);
          o.log.info({ partition: k }, "partition released");
          return;
        }
        try {
          slot.revision = await o.kv.update(partitionKey(k), value(k), slot.revision);
          slot.renewedAt = at;
        } catch (err) {
          if (isCasRefusal(err)) return lose(k, slot, "taken by another instance");
          // Fenced before the others may take it (they wait leaseMs from our last renewal), unless we
          // answer their asks: then they take nothing of ours, and a bucket we cannot write (a
          // leader being elected) they cannot write either. Stopping then would only move the
          // partition to another instance once the bucket is back, its consumer made again.
          if (at - slot.renewedAt > o.leaseMs * 0.6 && !o.connected?.()) return lose(k, slot, "not renewed in time");
          o.log.warn({ err, partition: k, sinceRenewalMs: Math.round(at - slot.renewedAt) }, "partition lease not renewed; retrying");
        }
        if (!slot.releasing && !desired.has(k)) {
          o.log.info({ partition: k }, "handing partition over");
          slot.releasing = true;
          void stopSlot(k, slot);
        }
      }),
    );
    for (const k of desired) if (!slots.has(k)) await acquire(k, at);
  };

  let stopped = false;
  let wake: (() => void) | null = null;
  // The first round before the start returns: a lone instance (or the first of a fleet) is
  // stepping its partitions when its start resolves.
  await round().catch((err) => o.log.error({ err }, "lease round failed"));
  await Promise.all([...slots.values()].map((s) => s.running));
  const loop = (async () => {
    while (!stopped) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, renewMs);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      wake = null;
      if (stopped) break;
      await round().catch((err) => o.log.error({ err }, "lease round failed"));
    }
  })();
  return {
    owned: () => [...slots].filter(([, s]) => !s.releasing).map(([k]) => k),
    async stop() {
      stopped = true;
      (wake as (() => void) | null)?.();
      await loop;
      watch.stop();
      await Promise.all(
        [...slots].map(async ([k, slot]) => {
          await stopSlot(k, slot);
          await o.kv.delete(partitionKey(k), { previousSeq: slot.revision }).catch(() => {});
        }),
      );
      slots.clear();
      await Promise.all(stops);
      await o.kv.delete(memberKey(o.instanceId)).catch(() => {});
      await watch.done;
    },
  };
}

function ownerOf(e: { json<T>(): T }): string | null {
  const v = leaseValue(e);
  return typeof v?.owner === "string" ? v.owner : null;
}

/** A lease's value as an object, or undefined when it is not one (never an error). */
function leaseValue(e: { json<T>(): T }): Record<string, unknown> | undefined {
  try {
    const v = e.json<unknown>();
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The server refused a compare-and-set: the entry is not at the revision we gave (someone wrote it). */
function isCasRefusal(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof JetStreamApiError && (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)) return true;
  }
  return false;
}
