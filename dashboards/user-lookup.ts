import { DashboardBuilder, TextBoxVariableBuilder } from "@grafana/grafana-foundation-sdk/dashboard";
import { energyByHourOfDay, sessionTotal, stat, table } from "./panels.ts";
import { sql } from "./sql-query.ts";

/** Support's view of one user (flow 107): wallet, usage, curve and sessions. */
export function userLookup() {
  return new DashboardBuilder("Voltvend / User lookup")
    .uid("voltvend-user")
    .tags(["voltvend"])
    .time({ from: "now-90d", to: "now" })
    .withVariable(new TextBoxVariableBuilder("user").label("User id"))
    .withPanel(
      stat(
        "Balance",
        "currencyCNY",
        sql(`SELECT coalesce((SELECT balance_cents FROM users WHERE user_id = '$user'), 0)::numeric / 100 AS balance`),
        { w: 8, h: 4 },
      ),
    )
    .withPanel(sessionTotal("energy", "user_id", "user"))
    .withPanel(sessionTotal("fees", "user_id", "user"))
    .withPanel(energyByHourOfDay("user_id", "user"))
    .withPanel(
      table(
        "Sessions",
        sql(`SELECT session_id, terminal_id, state, stop_reason, payment, energy_mwh / 1000.0 AS energy_wh, fee_cents, started_at, ended_at
             FROM sessions WHERE user_id = '$user' AND $__timeFilter(created_at) ORDER BY created_at DESC LIMIT 500`),
      ),
    );
}
