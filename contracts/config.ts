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
  /** @default nats://127.0.0.1:4222 */
  NATS_URL: z.string().default("nats://127.0.0.1:4222"),
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
  /** The processors do not step a reading whose ts is further ahead of its arrival (docs/faults.md). @default 60 */
  PROCESSOR_MAX_AHEAD_S: int(60),
  /** Users' scan-failure reports for a terminal within this window count as one fault. @default 600 */
  SCAN_FAILURE_WINDOW_S: int(600),
  /**
   * The longest a session may run; bounds the prepaid hold of energy targets. At most the
   * `limitS` a `power_on` may carry (2^31 − 1 s). @default 43200
   */
  MAX_SESSION_S: z.coerce.number().int().positive().max(wireBounds.limitS).default(12 * 3600),
  /** Power assumed for holds when a terminal's profile sets none. @default 4000 */
  DEFAULT_MAX_POWER_W: int(4000),
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
  /** Second, independent NATS server that receives a copy of everything (flow 111); off when unset. */
  BACKUP_NATS_URL: z.string().optional(),
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
