import type { Dashboard } from "@grafana/grafana-foundation-sdk/dashboard";
import { adminOverview } from "./admin-overview.ts";
import { franchiseeView } from "./franchisee.ts";
import { operations } from "./operations.ts";
import { regionView } from "./region.ts";
import { userLookup } from "./user-lookup.ts";

/** Every dashboard, by file name: what `npm run dashboards:build` writes and `push` provisions. */
export function dashboards(): Record<string, Dashboard> {
  return {
    "admin-overview": adminOverview().build(),
    region: regionView().build(),
    franchisee: franchiseeView().build(),
    "user-lookup": userLookup().build(),
    operations: operations().build(),
  };
}
