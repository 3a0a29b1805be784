import { jetstreamManager, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType, DiscardPolicy, type StreamConfig } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { ConfigError, type Subjects } from "../contracts/index.ts";

const DAY_NS = 86_400n * 1_000_000_000n;
const ns = (days: number) => Number(BigInt(days) * DAY_NS);

/**
 * The platform's streams. Limits are by age and bytes only: per-subject limits across
 * terminal subjects would make JetStream track every terminal's subject and cost throughput.
 */
export interface StreamLimits {
  maxBytes: number;
  telemetryMaxAgeDays: number;
  /** @default 1 */
  replicas?: number;
}

export function streamConfigs(s: Subjects, l: StreamLimits): (Partial<StreamConfig> & { name: string })[] {
  const common = {
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    duplicate_window: 2 * 60 * 1_000_000_000, // ns: a gateway's retry of a reading within 2 min is dropped
    num_replicas: l.replicas ?? 1,
  };
  return [
    { ...common, name: s.streams.telemetry, subjects: [s.wild.tel, s.wild.telBatch], max_age: ns(l.telemetryMaxAgeDays), max_bytes: l.maxBytes },
    { ...common, name: s.streams.events, subjects: [s.wild.evt], max_age: ns(30), max_bytes: Math.ceil(l.maxBytes / 10) },
    { ...common, name: s.streams.dlq, subjects: [s.wild.dlq], max_age: ns(30), max_bytes: Math.ceil(l.maxBytes / 10) },
    { ...common, name: s.streams.control, subjects: [`${s.prefix}.ctl.>`], max_age: ns(7), max_bytes: Math.ceil(l.maxBytes / 10) },
    // Fault history, so a franchisee that reconnects catches up.
    { ...common, name: s.streams.faults, subjects: [s.wild.fault], max_age: ns(365), max_bytes: Math.ceil(l.maxBytes / 10) },
    { ...common, name: s.streams.results, subjects: [`${s.prefix}.rec.>`], max_age: ns(30), max_bytes: Math.ceil(l.maxBytes / 10) },
    // Franchisees' daily packages, a year and a bit of them.
    { ...common, name: s.streams.packages, subjects: [s.wild.pkg], max_age: ns(400), max_bytes: Math.ceil(l.maxBytes / 10) },
  ];
}

/** JetStream API error codes (nats-server's errors.json) that nats.js does not name in JetStreamApiCodes. */
const JS_STREAM_NAME_IN_USE = 10058;
/** Insufficient resources (10023), memory (10028) or storage (10047): the server cannot reserve a stream's limits. */
const JS_STORAGE_REFUSED = new Set([10023, 10028, 10047]);

/** What the streams reserve together: the telemetry stream's bytes and a tenth for each of the six others. */
export function reservedBytes(l: StreamLimits): number {
  return l.maxBytes + 6 * Math.ceil(l.maxBytes / 10);
}

/** Creates or updates every stream and bucket; safe to run at every start, from every instance. */
export async function ensureTopology(nc: NatsConnection, s: Subjects, limits: StreamLimits): Promise<Buckets> {
  const jsm = await jetstreamManager(nc);
  for (const cfg of streamConfigs(s, limits)) {
    try {
      try {
        await jsm.streams.info(cfg.name);
        await jsm.streams.update(cfg.name, cfg);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        try {
          await jsm.streams.add(cfg);
        } catch (e2) {
          // Another instance created it meanwhile.
          if (!(e2 instanceof JetStreamApiError && e2.code === JS_STREAM_NAME_IN_USE)) throw e2;
        }
      }
    } catch (e) {
      throw refusedStorage(e, cfg.name, limits) ?? e;
    }
  }
  return openBuckets(nc, s, limits.replicas ?? 1);
}

/** JetStream's "insufficient storage resources" (10047) and "maximum bytes exceeded" (10028): an operator's setting, said in one line. */
function refusedStorage(e: unknown, stream: string, l: StreamLimits): ConfigError | null {
  if (!(e instanceof JetStreamApiError && JS_STORAGE_REFUSED.has(e.code))) return null;
  const msg = e.message;
  const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
  return new ConfigError(
    `NATS JetStream refused stream ${stream} (${msg}): the platform's streams reserve ${mib(reservedBytes(l))} of file storage` +
      ` (STREAM_MAX_BYTES=${l.maxBytes}, ${mib(l.maxBytes)}, plus a tenth of it for each of six more streams);` +
      ` lower STREAM_MAX_BYTES or raise the server's jetstream max_file_store (docs/operations.md, "Stream storage")`,
    { cause: e },
  );
}

export interface Buckets {
  /** terminalId → the armed session (control writes, cutoff processor reads). */
  arms: KV;
  /** terminalId → the cutoff processor's checkpoint of the session meter. */
  meters: KV;
  /** terminalId → last reading summary, for offline checks and live state. */
  live: KV;
  /** terminalId → registration and fault thresholds (control writes, fault processor reads). */
  terminals: KV;
  /** terminalId → the fault processor's open faults (its checkpoint). */
  faultState: KV;
  /** The processors' partition leases and members' heartbeats (processors/leases.ts). */
  leases: KV;
}

export async function openBuckets(nc: NatsConnection, s: Subjects, replicas = 1): Promise<Buckets> {
  const kvm = new Kvm(nc);
  const open = (name: string) => kvm.create(name, { history: 1, storage: StorageType.File, replicas });
  const [arms, meters, live, terminals, faultState, leases] = await Promise.all([
    open(s.buckets.arms),
    open(s.buckets.meters),
    open(s.buckets.live),
    open(s.buckets.terminals),
    open(s.buckets.faultState),
    open(s.buckets.leases),
  ]);
  return { arms, meters, live, terminals, faultState, leases };
}

/** A stream or consumer that is not there (nats.js's StreamNotFoundError, ConsumerNotFoundError). */
export function isNotFound(e: unknown): boolean {
  return e instanceof JetStreamApiError && (e.code === JetStreamApiCodes.StreamNotFound || e.code === JetStreamApiCodes.ConsumerNotFound);
}
