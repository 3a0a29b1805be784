import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { batchEnvelopeSchema, batchReadingSchema, readingSchema, type Reading, type Subjects } from "../contracts/index.ts";
import { isNotFound } from "../ingest/index.ts";

/** A terminal's newest reading and when the platform received it (the stream's clock). */
export interface Live {
  terminalId: string;
  gatewayId: string;
  ts: number;
  seenAt: number;
  state: "on" | "off";
  currentA: number;
  voltageV: number;
  energyWh: number;
}

/** Whether a terminal with this live state counts as online at `now`: seen within `offlineMs`. */
export function isOnline(live: Live | null, now: number, offlineMs: number): live is Live {
  return live !== null && now - live.seenAt <= offlineMs;
}

/** Most batches of one gateway looked through for a terminal missing from its newest batch. */
const MAX_SCAN = 5000;

/**
 * Terminals' live state, read from its owner: the TELEMETRY stream, where every reading a gateway
 * sent is kept with the time it arrived. Nothing is written for it (an idle fleet costs nothing)
 * and no other part has to run: a control-only deployment, or one whose processors are down,
 * answers "seen within the offline window" exactly.
 *
 * A terminal's newest single reading is its subject's last message (`tel.<gw>.<id>`); a batch
 * (`telb.<gw>`) holds several terminals, so the gateway's newest batch is looked in first, and
 * only when the terminal is missing from it are the gateway's batches of the window read through
 * (an ordered consumer from `now - windowMs`, at most MAX_SCAN). Only the registered gateway's
 * subjects are read, so another gateway cannot speak for the terminal.
 */
export function liveReader(nc: NatsConnection, s: Subjects, windowMs: number) {
  let jsm: Promise<JetStreamManager> | null = null;
  const manager = () =>
    (jsm ??= jetstreamManager(nc).catch((e: unknown) => {
      jsm = null;
      throw e;
    }));
  const last = async (subject: string): Promise<StoredMsg | null> => {
    try {
      return await (await manager()).streams.getMessage(s.streams.telemetry, { last_by_subj: subject });
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  };
  const toLive = (terminalId: string, gatewayId: string, r: Reading, seenAt: number): Live => ({
    terminalId,
    gatewayId,
    ts: r.ts,
    seenAt,
    state: r.state,
    currentA: r.currentA,
    voltageV: r.voltageV,
    energyWh: r.energyWh,
  });
  const single = async (gatewayId: string, terminalId: string): Promise<Live | null> => {
    const m = await last(s.tel(gatewayId, terminalId));
    if (!m) return null;
    const r = readingSchema.safeParse(safeJson(m.data));
    return r.success ? toLive(terminalId, gatewayId, r.data, m.time.getTime()) : null;
  };
  /** The terminal's newest reading in one batch message, if it has one. */
  const inBatch = (terminalId: string, gatewayId: string, data: Uint8Array, seenAt: number): Live | null => {
    const env = batchEnvelopeSchema.safeParse(safeJson(data));
    if (!env.success) return null;
    let best: Live | null = null;
    for (const raw of env.data.readings) {
      if ((raw as { terminalId?: unknown })?.terminalId !== terminalId) continue;
      const r = batchReadingSchema.safeParse(raw);
      if (r.success && (!best || r.data.ts > best.ts)) best = toLive(terminalId, gatewayId, r.data, seenAt);
    }
    return best;
  };
  const batched = async (gatewayId: string, terminalId: string, now: number): Promise<Live | null> => {
    const newest = await last(s.telBatch(gatewayId));
    if (!newest) return null;
    const found = inBatch(terminalId, gatewayId, newest.data, newest.time.getTime());
    if (found || newest.time.getTime() < now - windowMs) return found;
    // The gateway batched within the window, but not this terminal in its newest batch: look through
    // the window with a consumer of its own (no acks, gone after a minute if its delete fails).
    const m = await manager();
    const ci = await m.consumers.add(s.streams.telemetry, {
      filter_subject: s.telBatch(gatewayId),
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: new Date(now - windowMs).toISOString(),
      ack_policy: AckPolicy.None,
      inactive_threshold: 60_000_000_000,
      mem_storage: true,
    });
    let best: Live | null = null;
    try {
      if (ci.num_pending === 0) return null;
      const consumer = await jetstream(nc).consumers.get(s.streams.telemetry, ci.name);
      const msgs = await consumer.fetch({ max_messages: Math.min(ci.num_pending, MAX_SCAN), expires: 2000 });
      for await (const msg of msgs) {
        const l = inBatch(terminalId, gatewayId, msg.data, Math.floor(Number(msg.info.timestampNanos) / 1e6));
        if (l && (!best || l.seenAt >= best.seenAt)) best = l;
        if (msg.info.pending === 0) break;
      }
    } finally {
      await m.consumers.delete(s.streams.telemetry, ci.name).catch(() => undefined);
    }
    return best;
  };
  return {
    /** The terminal's newest reading from its registered gateway, single or batched; null if none. */
    async read(terminalId: string, gatewayId: string, now: number): Promise<Live | null> {
      const [a, b] = await Promise.all([single(gatewayId, terminalId), batched(gatewayId, terminalId, now)]);
      if (!a || !b) return a ?? b;
      return b.seenAt > a.seenAt ? b : a;
    },
  };
}

export type LiveReader = ReturnType<typeof liveReader>;

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}
