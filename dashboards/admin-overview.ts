import { DashboardBuilder, RowBuilder } from "@grafana/grafana-foundation-sdk/dashboard";
import { heatmap, stat, table, timeseries } from "./panels.ts";
import { series, sql } from "./sql-query.ts";

/** Admins (flow 108): energy, revenue, sessions, utilisation by hour and region, open faults. */
export function adminOverview() {
  return new DashboardBuilder("Voltvend / Admin overview")
    .uid("voltvend-admin")
    .tags(["voltvend"])
    .time({ from: "now-7d", to: "now" })
    .refresh("1m")
    .withRow(new RowBuilder("Usage"))
    .withPanel(stat("Energy", "watth", sql(`SELECT coalesce(sum(energy_mwh), 0) / 1000.0 AS energy_wh FROM session_usage WHERE $__timeFilter(hour_start)`)))
    .withPanel(
      stat(
        "Revenue",
        "currencyCNY",
        // Fees are exact cents per session; shown in yuan (numeric division, no float rounding).
        sql(`SELECT coalesce(sum(fee_cents), 0)::numeric / 100 AS revenue FROM usage_hourly WHERE $__timeFilter(bucket)`),
      ),
    )
    .withPanel(stat("Sessions", "none", sql(`SELECT count(*) AS sessions FROM sessions WHERE state = 'completed' AND $__timeFilter(started_at)`)))
    .withPanel(stat("Open faults", "none", sql(`SELECT count(*) AS open_faults FROM faults WHERE status <> 'resolved'`)))
    .withPanel(
      timeseries(
        "Energy per hour",
        "watth",
        series(`SELECT $__timeGroupAlias(hour_start, '1h'), sum(energy_mwh) / 1000.0 AS energy_wh
                FROM session_usage WHERE $__timeFilter(hour_start) GROUP BY 1 ORDER BY 1`),
        { w: 24, h: 8 },
      ),
    )
    .withRow(new RowBuilder("Capacity"))
    .withPanel(
      heatmap(
        "Utilisation by hour and region",
        "percentunit",
        // One series per region: the share of its terminals' time with the relay on, hour by hour.
        series(`SELECT $__timeGroupAlias(th.bucket, '1h'), t.region_id AS metric,
                  sum(th.on_readings::float8 / th.readings) / (SELECT count(*) FROM terminals x WHERE x.region_id = t.region_id) AS utilisation
                FROM telemetry_hour th JOIN terminals t USING (terminal_id) WHERE $__timeFilter(th.bucket) AND th.readings > 0
                GROUP BY 1, 2 ORDER BY 1`),
      ).calculate(false),
    )
    .withRow(new RowBuilder("Faults"))
    .withPanel(
      table(
        "Open faults",
        sql(`SELECT fault_id, kind, terminal_id, franchisee_id, region_id, status, count, opened_at FROM faults
             WHERE status <> 'resolved' ORDER BY opened_at DESC LIMIT 200`),
      ),
    );
}
