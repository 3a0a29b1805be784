import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { Config, Subjects } from "../contracts/index.ts";
import type { Buckets, RunningConsumer } from "../ingest/index.ts";
import { authenticator } from "./auth.ts";
import { startControlConsumers } from "./consumers.ts";
import type { Db } from "./db.ts";
import { adminRoutes } from "./http/admin.ts";
import { opsRoutes } from "./http/ops.ts";
import { createApp, type App } from "./http/server.ts";
import { userRoutes } from "./http/user.ts";
import { franchiseeRoutes } from "./http/franchisee.ts";
import { faultService } from "./faults/service.ts";
import { backlogMetrics, createMetrics } from "./metrics.ts";
import { sessionService, type SessionService } from "./sessions/service.ts";
import { startTicker } from "./ticker.ts";
import { reportRoutes } from "./http/reports.ts";
import { pageRoutes } from "./http/pages.ts";
import { startUsageRoller } from "./reports/roller.ts";
import { startWebhookSender } from "./webhooks.ts";
import { streamCounter } from "./http/streams.ts";
import { moneyRoutes } from "./http/money.ts";
import { paymentService, type PaymentService } from "./payments/service.ts";
import type { PaymentProvider } from "./payments/provider.ts";
import { SimPaymentProvider } from "./payments/sim-provider.ts";
import { liveReader } from "./live.ts";
import { newInstanceId } from "./round-claims.ts";

export interface ControlOptions {
  config: Config;
  db: Db;
  /** Where reports read (READ_DATABASE_URL: a standby). @default db */
  readDb?: Db;
  nc: NatsConnection;
  subjects: Subjects;
  buckets: Buckets;
  log: Logger;
  registry: Registry;
  clock: () => number;
}

export interface RunningControl {
  app: App;
  sessions: SessionService;
  /** Paying in and out through the configured payment providers. */
  payments: PaymentService;
  /** The built-in simulated provider when PAYMENT_SIM is on (the demo and tests pay with it). */
  simProvider: SimPaymentProvider | null;
  /** This instance's name where the rounds it did are recorded (control_rounds). */
  instance: string;
  /** The address the HTTP server listens on. */
  url: string;
  /** Rolls finished sessions into usage facts and publishes due packages now, rather than at the next round. */
  rollUsage(): Promise<void>;
  /** Runs the command round now (repeats, deadlines, outbox, the arms check), rather than at the next tick. */
  tick(): Promise<void>;
  /** Graceful: stops taking requests, finishes those in flight, then stops consuming. */
  stop(): Promise<void>;
}

/**
 * The control service: HTTP API, terminal-event and cutoff consumers, and the command ticker.
 * It keeps no state of its own between requests, so several copies run behind a load balancer.
 */
export async function startControl(o: ControlOptions): Promise<RunningControl> {
  const { config: c } = o;
  const metrics = createMetrics(o.registry);
  backlogMetrics(o.registry, o.db);
  const timing = { retryMs: c.CMD_RETRY_MS, timeoutMs: c.CMD_TIMEOUT_MS };
  // Live state from its owner, the telemetry stream: no processor needs to run (control/live.ts).
  const instance = newInstanceId();
  const live = liveReader(o.nc, o.subjects, c.TERMINAL_OFFLINE_S * 1000);
  const sessions = sessionService({
    db: o.db,
    nc: o.nc,
    subjects: o.subjects,
    buckets: o.buckets,
    clock: o.clock,
    log: o.log,
    metrics,
    timing,
    maxSessionS: c.MAX_SESSION_S,
    offlineMs: c.TERMINAL_OFFLINE_S * 1000,
    live,
  });
  const faults = faultService({ db: o.db, nc: o.nc, subjects: o.subjects, buckets: o.buckets, clock: o.clock, scanWindowMs: c.SCAN_FAILURE_WINDOW_S * 1000, log: o.log });
  const { app, auth, publicLimit } = await createApp({
    log: o.log,
    metrics,
    authenticate: authenticator(
      c.VEND_JWT_SECRET!,
      { maxLifetimeS: c.JWT_MAX_LIFETIME_S, issuer: c.JWT_ISSUER, audience: c.JWT_AUDIENCE, clock: o.clock },
      c.JWT_JWKS_URL ? { jwksUrl: c.JWT_JWKS_URL, issuer: c.JWT_JWKS_ISSUER!, audience: c.JWT_JWKS_AUDIENCE!, roleClaim: c.JWT_ROLE_CLAIM } : undefined,
    ),
    limits: { windowMs: c.RATE_LIMIT_WINDOW_S * 1000, publicMax: c.RATE_LIMIT_PUBLIC_MAX, principalMax: c.RATE_LIMIT_PRINCIPAL_MAX, adminMax: c.RATE_LIMIT_ADMIN_MAX },
    trustProxy: c.TRUST_PROXY,
  });
  const streams = streamCounter(c.SSE_MAX_STREAMS);
  // Adapters for real providers (WeChat Pay, Alipay) are added to this list (docs/sessions-and-money.md).
  const simProvider = c.PAYMENT_SIM ? new SimPaymentProvider({ clock: o.clock, maxAgeMs: c.PAYMENT_NOTIFY_MAX_AGE_S * 1000 }) : null;
  const providers: PaymentProvider[] = simProvider ? [simProvider] : [];
  let listenUrl = "";
  const payments = paymentService({
    db: o.db,
    log: o.log,
    clock: o.clock,
    providers,
    publicUrl: () => c.PUBLIC_URL?.replace(/\/$/, "") ?? listenUrl,
    orderTtlMs: c.PAYMENT_ORDER_TTL_S * 1000,
  });
  let draining = false;
  adminRoutes(app, {
    db: o.db,
    nc: o.nc,
    subjects: o.subjects,
    buckets: o.buckets,
    clock: o.clock,
    offlineMs: c.TERMINAL_OFFLINE_S * 1000,
    onRequest: auth("admin"),
    live,
    onTerminal: (id) => faults.publishTerminal(id),
  });
  franchiseeRoutes(app, {
    db: o.db,
    nc: o.nc,
    subjects: o.subjects,
    live,
    metrics,
    faults,
    clock: o.clock,
    offlineMs: c.TERMINAL_OFFLINE_S * 1000,
    streams,
    statementTz: c.PACKAGE_TIMEZONE,
    onRequest: auth("franchisee"),
  });
  userRoutes(app, {
    db: o.db,
    clock: o.clock,
    nc: o.nc,
    subjects: o.subjects,
    metrics,
    sessions,
    faults,
    payments,
    streams,
    minDurationS: c.MIN_TARGET_DURATION_S,
    user: auth("user"),
    userOrAdmin: auth("user", "admin"),
    publicLimit,
  });
  pageRoutes(app, {
    db: o.db,
    nc: o.nc,
    subjects: o.subjects,
    live,
    clock: o.clock,
    offlineMs: c.TERMINAL_OFFLINE_S * 1000,
    demoSignIn: c.DEMO_SIGN_IN,
    jwtSecret: c.VEND_JWT_SECRET!,
    claims: { issuer: c.JWT_ISSUER, audience: c.JWT_AUDIENCE },
    publicLimit,
  });
  moneyRoutes(app, { db: o.db, clock: o.clock, payments, admin: auth("admin"), publicLimit });
  reportRoutes(app, { db: o.readDb ?? o.db, clock: o.clock, admin: auth("admin"), user: auth("user"), franchisee: auth("franchisee") });
  opsRoutes(app, { db: o.db, nc: o.nc, metrics, draining: () => draining });

  const consumers: RunningConsumer[] = await startControlConsumers({ nc: o.nc, subjects: o.subjects, log: o.log, metrics, sessions, faults });
  // Terminals registered before the fault processor existed (or while the bucket was lost).
  void faults.publishAllTerminals().catch((err) => o.log.error({ err }, "publishing terminals to the fault processor failed"));
  const webhooks = startWebhookSender({ db: o.db, log: o.log, clock: o.clock, failures: metrics.webhookFailures });
  const ticker = startTicker({
    db: o.db,
    nc: o.nc,
    sessions,
    arms: o.buckets.arms,
    clock: o.clock,
    timing,
    everyMs: c.CONTROL_TICK_MS,
    armsCheckMs: c.ARMS_CHECK_MS,
    metrics,
    log: o.log,
    instance,
  });
  const roller = startUsageRoller({
    db: o.db,
    clock: o.clock,
    everyMs: c.USAGE_ROLL_S * 1000,
    log: o.log,
    instance,
    packages: { nc: o.nc, subjects: o.subjects, tz: c.PACKAGE_TIMEZONE, delayMs: c.PACKAGE_DELAY_S * 1000 },
  });
  const url = await app.listen({ port: c.PORT, host: c.HOST });
  listenUrl = url.replace("0.0.0.0", "127.0.0.1");
  // Orders and payouts whose provider answer never came are asked about in the background too.
  let reconciling = false;
  const reconcileTimer = setInterval(() => {
    if (reconciling || draining || providers.length === 0) return;
    reconciling = true;
    payments
      .reconcile(c.PAYMENT_RECONCILE_S * 1000)
      .catch((err) => o.log.warn({ err }, "payment reconciliation failed; tried again next round"))
      .finally(() => (reconciling = false));
  }, c.PAYMENT_RECONCILE_S * 1000);
  reconcileTimer.unref();

  return {
    app,
    sessions,
    payments,
    simProvider,
    instance,
    url: url.replace("0.0.0.0", "127.0.0.1"),
    rollUsage: roller.roll,
    tick: ticker.tick,
    async stop() {
      draining = true;
      clearInterval(reconcileTimer);
      await app.close();
      await Promise.all(consumers.map((x) => x.stop()));
      await ticker.stop();
      await roller.stop();
      await webhooks.stop();
    },
  };
}
