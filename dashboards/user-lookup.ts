import { DashboardBuilder, TextBoxVariableBuilder } from "@grafana/grafana-foundation-sdk/dashboard";
import { barchart, stat, table } from "./panels.ts";
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
    .withPanel(
      stat(
        "Energy",
        "watth",
        sql(`SELECT coalesce(sum(energy_mwh), 0) / 1000.0 AS energy_wh FROM sessions
             WHERE user_id = '$user' AND usage_rolled_at IS NOT NULL AND $__timeFilter(started_at)`),
        { w: 8, h: 4 },
      ),
    )
    .withPanel(
      stat(
        "Fees",
        "currencyCNY",
        sql(`SELECT coalesce(sum(fee_cents), 0)::numeric / 100 AS fees FROM sessions
             WHERE user_id = '$user' AND usage_rolled_at IS NOT NULL AND $__timeFilter(started_at)`),
        { w: 8, h: 4 },
      ),
    )
    .withPanel(
      barchart(
        "Energy by local hour of day",
        "watth",
        sql(`SELECT lpad(h::text, 2, '0') AS hour, coalesce(sum(u.energy_mwh), 0) / 1000.0 AS energy_wh
             FROM generate_series(0, 23) h
             LEFT JOIN (session_usage u JOIN sessions s ON s.session_id = u.session_id AND s.user_id = '$user')
               ON u.hour_of_day = h AND $__timeFilter(s.started_at)
             GROUP BY h ORDER BY h`),
        { w: 24, h: 8 },
      ),
    )
    .withPanel(
      table(
        "Sessions",
        sql(`SELECT session_id, terminal_id, state, stop_reason, payment, energy_mwh / 1000.0 AS energy_wh, fee_cents, started_at, ended_at
             FROM sessions WHERE user_id = '$user' AND $__timeFilter(created_at) ORDER BY created_at DESC LIMIT 500`),
      ),
    );
}
