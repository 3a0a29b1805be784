/** The control service: HTTP API for apps, the session machine, power commands. */
export { startControl, type ControlOptions, type RunningControl } from "./service.ts";
export { roleSchema, signToken, type Role } from "./auth.ts";
export { createPool, createReadPool, inTx, readLagMs, parseInt8AsNumber, CommitUnknownError, type Db } from "./db.ts";
export { primaryResolver, waitForPrimary, NoPrimaryError, type PrimaryResolver } from "./primary.ts";
export { transition as sessionTransition, type SessionCore, type SessionInput, type SessionAction } from "./sessions/machine.ts";
export { finalBill } from "./sessions/bill.ts";
export { ledgerSums, wallet } from "./wallet.ts";
export { newRegistry } from "./metrics.ts";
export { startOpsServer, type OpsServer } from "./http/ops-server.ts";
export { usageReport, type GroupBy, type UsageQuery, type UsageTotals } from "./reports/usage.ts";
export { rollSessionUsage } from "./reports/roller.ts";
export { regionInsights, type RegionInsights } from "./reports/insights.ts";
export { buildPackage, type FranchiseePackage } from "./reports/package.ts";
