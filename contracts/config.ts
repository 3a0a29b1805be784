import { z } from "zod";
import { prefixPattern } from "./subjects.ts";
import { isValidTimeZone } from "./billing/zoned.ts";
import { wireBounds } from "./bounds.ts";

const int = (d: number) => z.coerce.number().int().positive().default(d);

/**
 * The one configuration schema, parsed once at start and passed down. Nothing else reads
 * `process.env`. Durations are in milliseconds unless the name says seconds.
 */
export const configSchema = z.object({
  /**
   * One server, or the servers of a cluster comma-separated (`nats://n1:4222,nats://n2:4222,…`):
   * the platform connects to one of them and moves to another when it goes (docs/scaling.md).
   * @default nats://127.0.0.1:4222
   */
  NATS_URL: z
    .string()
    .default("nats://127.0.0.1:4222")
    .superRefine((v, ctx) => {
      try {
        natsServers(v);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: (e as Error).message });
      }
    }),
  /**
   * One server, or several (`postgres://user@h1:p1,h2:p2/db`, the libpq form): the platform writes
   * to whichever of them is the primary, found as `target_session_attrs=read-write` finds it
   * (docs/backup-and-restore.md). @default postgres://postgres@127.0.0.1:5432/voltvend
   */
  DATABASE_URL: z
    .string()
    .default("postgres://postgres@127.0.0.1:5432/voltvend")
    .superRefine((v, ctx) => {
      try {
        parseDatabaseUrl(v);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: (e as Error).message });
      }
    }),
  /**
   * Where reports, usage and franchisee packages read (docs/backup-and-restore.md, "Reads from the
   * standby"): one host or several, the first standby among them preferred, the primary when no
   * standby answers. Its data is as old as the standby's replay lag, sent with each report in
   * `Vv-Read-Lag-Ms`. @default DATABASE_URL
   */
  READ_DATABASE_URL: z
    .string()
    .optional()
    .superRefine((v, ctx) => {
      if (v === undefined) return;
      try {
        parseDatabaseUrl(v);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: (e as Error).message });
      }
    }),
  /**
   * How long a request's database work waits for the database to come back (a failover, a lost
   * connection) and is then done again, before it answers 503: work that had not reached COMMIT
   * is redone; a COMMIT whose answer was lost is looked up first (docs/backup-and-restore.md).
   * 0: answer 503 at once. @default 20000
   */
  DB_FAILOVER_WAIT_MS: z.coerce.number().int().min(0).max(120_000).default(20_000),
  /** HTTP port of the control service. @default 8080 */
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default("0.0.0.0"),
  /**
   * Port of the process's own `/metrics`, `/healthz` and `/readyz` (0: any free port). A process
   * without the control part serves them here, on 9464 when unset; one with it serves them on PORT,
   * and here too when set. Each process on one host needs a port of its own.
   */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** @default vend */
  VEND_PREFIX: z.string().regex(prefixPattern).default("vend"),
  /** HS256 secret for JWTs; required outside --demo. */
  VEND_JWT_SECRET: z.string().min(16, "VEND_JWT_SECRET must be at least 16 characters").optional(),
  /** A command is repeated with the same cmdId this often until its answer arrives. @default 1000 */
  CMD_RETRY_MS: int(1000),
  /** ...and for at most this long. @default 10000 */
  CMD_TIMEOUT_MS: int(10_000),
  /** A session whose terminal is silent this long ends `terminal_offline`. @default 30 */
  SESSION_SILENCE_S: int(30),
  /** A terminal silent this long answers charge requests with `terminal_offline`. @default 60 */
  TERMINAL_OFFLINE_S: int(60),
  /**
   * Partitions of the terminals (by gateway) that the processor instances share: each partition is
   * stepped by one live instance at a time, so up to this many instances share the work. The same
   * on every instance; change it only with all of them stopped (docs/scaling.md, "Partitions and
   * takeover"). @default 1
   */
  PROCESSOR_PARTITIONS: z.coerce.number().int().min(1).max(256).default(1),
  /**
   * A processor instance that has not renewed its partitions' leases for this long is dead: the
   * others take its partitions over (within this plus a fifth of it, and their start). @default 5
   */
  PROCESSOR_LEASE_S: z.coerce.number().int().min(1).max(600).default(5),
  /**
   * The scheduling priority (nice, 0-19) a process running only background parts (`--parts writer`,
   * `backup`, or both) gives itself: on a host it shares with the processors and the control
   * service, their cutoffs and faults come first and the writer catches up in their idle time
   * (the readings wait in the stream). 0 leaves it as started (docs/scaling.md). @default 10
   */
  BACKGROUND_NICE: z.coerce.number().int().min(0).max(19).default(10),
  /** The processors do not step a reading whose ts is further ahead of its arrival (docs/faults.md). @default 60 */
  PROCESSOR_MAX_AHEAD_S: int(60),
  /** Users' scan-failure reports for a terminal within this window count as one fault. @default 600 */
  SCAN_FAILURE_WINDOW_S: int(600),
  /**
   * The longest a session may run; bounds the prepaid hold of energy targets. At most the
   * `limitS` a `power_on` may carry (2^31 − 1 s). @default 43200
   */
  MAX_SESSION_S: z.coerce.number().int().positive().max(wireBounds.limitS).default(12 * 3600),
  /** How often finished sessions are rolled into usage facts (reports see a session then). @default 10 */
  USAGE_ROLL_S: int(10),
  /**
   * The demo sign-in (`POST /v1/demo/sign-in`: any user id gets a user token). On with --demo;
   * never in production: plug in an identity provider instead (docs/pages.md). @default false
   */
  DEMO_SIGN_IN: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
  /** How often the writer refreshes the telemetry aggregates. @default 60 */
  AGGREGATE_REFRESH_S: int(60),
  /** The time zone whose midnight ends a franchisee's daily package. @default UTC */
  PACKAGE_TIMEZONE: z.string().refine(isValidTimeZone, "must be an IANA time zone such as Asia/Shanghai").default("UTC"),
  /** A day's packages go out this long after its midnight, so its sessions have ended and been rolled. @default 600 */
  PACKAGE_DELAY_S: int(600),
  /**
   * The built-in simulated payment provider (`sim`, control/payments/sim-provider.ts): orders are
   * paid by the demo and the tests, never by a real person. On with --demo. @default false
   */
  PAYMENT_SIM: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
  /** A provider's notification stamped further than this from the platform's clock is refused as stale (a replay). @default 300 */
  PAYMENT_NOTIFY_MAX_AGE_S: int(300),
  /** A payment order not paid this long after creation is closed by the next query. @default 1800 */
  PAYMENT_ORDER_TTL_S: int(1800),
  /** How often the control service queries the provider for pending orders and payouts whose notification never came. @default 60 */
  PAYMENT_RECONCILE_S: int(60),
  /** The platform's address as providers reach it (their notifications go to `<PUBLIC_URL>/v1/payments/notify/<provider>`); default the listening address. */
  PUBLIC_URL: z.url().optional(),
  /** How often the control service looks for due command repeats and deadlines. @default 200 */
  CONTROL_TICK_MS: int(200),
  /**
   * How often the control service checks the arms bucket against the sessions (re-arms a powered
   * session found unarmed, removes arms of sessions not powered): the longest a lost arm stays lost.
   * @default 5000
   */
  ARMS_CHECK_MS: int(5000),
  /**
   * Bytes the telemetry stream may hold before the oldest readings go; the six other streams get a
   * tenth each, so JetStream reserves 1.6 times this of its file store. Sized for a developer's
   * machine; production sets it (docs/operations.md, "Stream storage"). @default 512 MiB
   */
  STREAM_MAX_BYTES: z.coerce.number().int().min(1 << 20).default(512 * 2 ** 20),
  /** Replicas of every stream and bucket: 3 in a three-server cluster (see docs/durability.md). @default 1 */
  STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /** Days the telemetry stream keeps readings (the database keeps them longer). @default 7 */
  TELEMETRY_MAX_AGE_DAYS: int(7),
  /** Telemetry storage path: TimescaleDB when available (auto), or forced. Chosen at first migration. @default auto */
  VEND_STORAGE: z.enum(["auto", "timescaledb", "plain"]).default("auto"),
  /** Days readings are kept in PostgreSQL. @default 400 */
  READINGS_RETENTION_DAYS: int(400),
  /** TimescaleDB: chunks older than this many days are compressed. @default 2 */
  READINGS_COMPRESS_AFTER_DAYS: int(2),
  /** Second, independent NATS server (or cluster, comma-separated) that receives a copy of everything (flow 111); off when unset. */
  BACKUP_NATS_URL: z
    .string()
    .optional()
    .superRefine((v, ctx) => {
      try {
        if (v !== undefined) natsServers(v);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: (e as Error).message });
      }
    }),
  /**
   * Secret from which `npm run nats:config` derives the NATS passwords of franchisees and gateways
   * (docs/operations.md, "NATS authorization"); at least 16 characters. Only that command reads it.
   */
  VEND_NATS_SECRET: z.string().min(16, "VEND_NATS_SECRET must be at least 16 characters").optional(),
  /** Password of the platform's own NATS user `platform` in the authorization `npm run nats:config` writes; at least 16 characters. */
  VEND_NATS_PASSWORD: z.string().min(16, "VEND_NATS_PASSWORD must be at least 16 characters").optional(),
  /** Longest lifetime a token may claim: `exp - iat` (or `exp - now` without `iat`), in seconds. @default 2592000 (30 days) */
  JWT_MAX_LIFETIME_S: int(30 * 86_400),
  /** When set, tokens must carry this `iss` (and the demo sign-in issues it). */
  JWT_ISSUER: z.string().min(1).optional(),
  /** When set, tokens must carry this `aud` (and the demo sign-in issues it). */
  JWT_AUDIENCE: z.string().min(1).optional(),
  /**
   * Beside the shared secret: the operator's own identity provider. Tokens signed with an
   * asymmetric key (RS256, ES256, PS256, EdDSA) are verified against the keys published at this
   * JWKS URL (fetched on first use and on an unknown `kid`, cached), and must carry
   * JWT_JWKS_ISSUER as `iss` and JWT_JWKS_AUDIENCE in `aud` (both required with the URL).
   */
  JWT_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  JWT_JWKS_ISSUER: z.string().min(1).optional(),
  JWT_JWKS_AUDIENCE: z.string().min(1).optional(),
  /** The claim of the identity provider's tokens that holds the role (admin, franchisee or user). @default role */
  JWT_ROLE_CLAIM: z.string().min(1).default("role"),
  /** The shortest duration target a charge request may ask for, in seconds (energy targets start at 1 Wh, amounts at 1 cent). @default 60 */
  MIN_TARGET_DURATION_S: int(60),
  /** Rate limits count requests in windows of this many seconds. @default 60 */
  RATE_LIMIT_WINDOW_S: int(60),
  /** Requests per window from one client address to each public call (demo sign-in, terminal status, scan-failure reports). @default 600 */
  RATE_LIMIT_PUBLIC_MAX: int(600),
  /** Requests per window of one user or franchisee (token `sub` and `role`) to the authenticated calls. @default 6000 */
  RATE_LIMIT_PRINCIPAL_MAX: int(6000),
  /** Requests per window of one admin (operators' scripts seed whole fleets). @default 60000 */
  RATE_LIMIT_ADMIN_MAX: int(60_000),
  /**
   * Which proxies to trust for the client address the public limits key on (`X-Forwarded-For`):
   * `false`, `true`, a hop count, or a comma-separated list of addresses or CIDRs. @default false
   */
  TRUST_PROXY: z
    .string()
    .default("false")
    .transform((v): boolean | number | string => (v === "true" ? true : v === "false" ? false : /^\d+$/.test(v) ? Number(v) : v)),
  /** Concurrent event streams (SSE) one principal may hold: a franchisee's fault streams, a user's session streams. @default 20 */
  SSE_MAX_STREAMS: int(20),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});
export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parses the environment; a bad value names its variable. */
export function loadConfig(env: Record<string, string | undefined>, opts: { demo?: boolean } = {}): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  const cfg = parsed.data;
  if (!cfg.VEND_JWT_SECRET) {
    if (!opts.demo) throw new ConfigError("VEND_JWT_SECRET is required (at least 16 characters) outside --demo");
    cfg.VEND_JWT_SECRET = "demo-secret-not-for-production";
  }
  if (cfg.JWT_JWKS_URL && (!cfg.JWT_JWKS_ISSUER || !cfg.JWT_JWKS_AUDIENCE))
    throw new ConfigError("JWT_JWKS_URL needs JWT_JWKS_ISSUER and JWT_JWKS_AUDIENCE: tokens of a shared identity provider must be checked as meant for this platform");
  if (opts.demo && env.DEMO_SIGN_IN === undefined) cfg.DEMO_SIGN_IN = true;
  if (opts.demo && env.PAYMENT_SIM === undefined) cfg.PAYMENT_SIM = true;
  return cfg;
}

export interface DatabaseHosts {
  hosts: { host: string; port: number }[];
  /** The URL of one of the hosts, with everything else (user, database, parameters) as given. */
  urlFor(i: number): string;
}

/**
 * Splits a DATABASE_URL with one or several `host:port` into its hosts. node-postgres and the URL
 * class take one host, so each host gets a URL of its own.
 */
export function parseDatabaseUrl(url: string): DatabaseHosts {
  const m = /^(postgres(?:ql)?:\/\/)([^@/]*@)?([^/?#]*)(.*)$/.exec(url);
  if (!m) throw new Error(`not a postgres:// URL: ${url}`);
  const [, scheme, auth = "", hostList, rest] = m as unknown as [string, string, string | undefined, string, string];
  const hosts = hostList.split(",").map((h) => {
    const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(h);
    if (!hp) throw new Error(`bad host "${h}" in DATABASE_URL`);
    return { host: hp[1]!, port: hp[2] ? Number(hp[2]) : 5432 };
  });
  const urlFor = (i: number) => {
    const url = `${scheme}${auth}${hosts[i]!.host}:${hosts[i]!.port}${rest}`;
    new URL(url); // throws on anything else the URL class cannot read
    return url;
  };
  hosts.forEach((_, i) => urlFor(i));
  return { hosts, urlFor };
}

/**
 * The servers of a NATS_URL: one URL or several comma-separated (a cluster), each
 * `[nats|tls|ws|wss]://host[:port]` or `host[:port]`. The client connects to one and moves to the
 * others when it goes (it also learns the cluster's other servers from the one it is on).
 */
export function natsServers(url: string): string[] {
  const list = url
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error("NATS_URL lists no server");
  for (const s of list) {
    const withScheme = /^[a-z]+:\/\//i.test(s) ? s : `nats://${s}`;
    let u: URL;
    try {
      u = new URL(withScheme.replace(/^(nats|tls|ws|wss):/i, "http:"));
    } catch (e) {
      throw new Error(`bad server "${s}" in NATS_URL`, { cause: e });
    }
    if (!/^(nats|tls|ws|wss):\/\//i.test(withScheme) || !u.hostname || u.pathname.length > 1) throw new Error(`bad server "${s}" in NATS_URL`);
  }
  return list;
}
