import { DashboardBuilder, QueryVariableBuilder } from "@grafana/grafana-foundation-sdk/dashboard";
import { energyByHourOfDay, sessionTotal, stat, table } from "./panels.ts";
import { datasource, sql } from "./sql-query.ts";

/**
 * One franchisee's data (flows 109-110), chosen by a template variable. For a franchisee's own
 * Grafana, provision it with the variable fixed (a constant) and a database role that sees only
 * its rows; the platform's own isolation is its HTTP API (docs/analytics.md).
 */
export function franchiseeView() {
  return new DashboardBuilder("Voltvend / Franchisee")
    .uid("voltvend-franchisee")
    .tags(["voltvend"])
    .time({ from: "now-30d", to: "now" })
    .withVariable(new QueryVariableBuilder("franchisee").label("Franchisee").datasource(datasource).query("SELECT franchisee_id FROM franchisees ORDER BY 1"))
    .withPanel(sessionTotal("energy", "franchisee_id", "franchisee"))
    .withPanel(sessionTotal("fees", "franchisee_id", "franchisee"))
    .withPanel(stat("Open faults", "none", sql(`SELECT count(*) AS open_faults FROM faults WHERE franchisee_id = '$franchisee' AND status <> 'resolved'`), { w: 8, h: 4 }))
    .withPanel(energyByHourOfDay("franchisee_id", "franchisee"))
    .withPanel(
      table(
        "Terminals",
        sql(`SELECT t.terminal_id, t.region_id, count(s.session_id) AS sessions, coalesce(sum(s.energy_mwh), 0) / 1000.0 AS energy_wh,
               coalesce(sum(s.fee_cents), 0) AS fee_cents,
               (SELECT count(*) FROM faults f WHERE f.terminal_id = t.terminal_id AND f.status <> 'resolved') AS open_faults
             FROM terminals t LEFT JOIN sessions s ON s.terminal_id = t.terminal_id AND s.usage_rolled_at IS NOT NULL AND $__timeFilter(s.started_at)
             WHERE t.franchisee_id = '$franchisee' GROUP BY 1, 2 ORDER BY 1`),
      ),
    )
    .withPanel(
      table(
        "Faults",
        sql(`SELECT fault_id, kind, terminal_id, status, count, opened_at, acknowledged_at, resolved_at FROM faults
             WHERE franchisee_id = '$franchisee' AND $__timeFilter(opened_at) ORDER BY opened_at DESC LIMIT 200`),
      ),
    );
}
