/**
 * The control service's internals that the tests reach (nats.js's `internal_mod.ts`): only `test/`
 * imports this entry; every other folder imports `index.ts`.
 */
export * from "./index.ts";
export { authenticator, type IdentityProvider } from "./auth.ts";
export { createMetrics, type Metrics } from "./metrics.ts";
export { createApp, type App } from "./http/server.ts";
export { sessionEvents } from "./http/sse.ts";
export { streamCounter } from "./http/streams.ts";
export { clientKey } from "./http/limits.ts";
export { nulPaths } from "./http/nul.ts";
export { storedProfile } from "./registry.ts";
export { armTerminal, disarmTerminal } from "./sessions/arms.ts";
export { repeatOf, transition, type Transition } from "./sessions/machine.ts";
export { withoutRepeats, type EventItem } from "./consumers.ts";
export { checkpointUpTo, type Bill } from "./sessions/bill.ts";
export { publishDuePackages } from "./reports/daily.ts";
export { packageParts, PACKAGE_PART_BYTES } from "./reports/package-parts.ts";
export { enqueue, relayOutbox, OutboxRelayError, OUTBOX_MAX_BYTES } from "./outbox.ts";
export { suggestTimeOfUse } from "./reports/tou.ts";
export { audit, listAudit } from "./audit.ts";
export { routeTable, type RouteEntry } from "./http/server.ts";
export { SimPaymentProvider } from "./payments/sim-provider.ts";
export { NotificationRefused } from "./payments/provider.ts";
export { ledgerMismatches } from "./wallet.ts";
export { meterFrom } from "./sessions/meter.ts";
export { feeLines } from "./sessions/receipt.ts";
export { standbyResolver, STANDBY_RECHECK_MS, type HostProbes } from "./primary.ts";
export { rangeSources } from "./reports/usage.ts";
