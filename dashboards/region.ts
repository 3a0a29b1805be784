import { DashboardBuilder, QueryVariableBuilder } from "@grafana/grafana-foundation-sdk/dashboard";
import { barchart, energyByHourOfDay, stat, table, timeseries } from "./panels.ts";
import { datasource, series, sql } from "./sql-query.ts";

/** One region (flow 108): its curves by local hour, how busy its terminals are, its terminals. */
export function regionView() {
  return new DashboardBuilder("Voltvend / Region")
    .uid("voltvend-region")
    .tags(["voltvend"])
    .time({ from: "now-30d", to: "now" })
    .withVariable(new QueryVariableBuilder("region").label("Region").datasource(datasource).query("SELECT region_id FROM regions ORDER BY 1"))
    .withPanel(
      stat(
        "Installed terminals",
        "none",
        sql(`SELECT count(*) AS terminals FROM terminals WHERE region_id = '$region'`),
      ),
    )
    .withPanel(
      stat(
        "Energy",
        "watth",
        sql(`SELECT coalesce(sum(energy_mwh), 0) / 1000.0 AS energy_wh FROM session_usage WHERE region_id = '$region' AND $__timeFilter(hour_start)`),
      ),
    )
    .withPanel(energyByHourOfDay("region_id", "region"))
    .withPanel(
      barchart(
        "Utilisation by local hour of day",
        "percentunit",
        sql(`SELECT lpad(h::text, 2, '0') AS hour, coalesce(b.busy / nullif(b.hours * (SELECT count(*) FROM terminals WHERE region_id = '$region'), 0), 0) AS utilisation
             FROM generate_series(0, 23) h
             LEFT JOIN (
               SELECT extract(hour FROM x.bucket AT TIME ZONE r.timezone)::int AS hod, sum(x.busy) AS busy, count(*) AS hours
               FROM (SELECT th.bucket, sum(th.on_readings::float8 / th.readings) AS busy FROM telemetry_hour th
                     JOIN terminals t ON t.terminal_id = th.terminal_id AND t.region_id = '$region'
                     WHERE $__timeFilter(th.bucket) AND th.readings > 0 GROUP BY th.bucket) x
               CROSS JOIN regions r WHERE r.region_id = '$region' GROUP BY 1
             ) b ON b.hod = h
             ORDER BY h`),
      ),
    )
    .withPanel(
      timeseries(
        "Terminals busy (hourly mean)",
        "none",
        series(`SELECT $__timeGroupAlias(th.bucket, '1h'), sum(th.on_readings::float8 / th.readings) AS busy
                FROM telemetry_hour th JOIN terminals t ON t.terminal_id = th.terminal_id AND t.region_id = '$region'
                WHERE $__timeFilter(th.bucket) AND th.readings > 0 GROUP BY 1 ORDER BY 1`),
        { w: 24, h: 8 },
      ),
    )
    .withPanel(
      table(
        "Terminals",
        sql(`SELECT t.terminal_id, t.franchisee_id, count(s.session_id) AS sessions, coalesce(sum(s.energy_mwh), 0) / 1000.0 AS energy_wh,
               coalesce(sum(s.fee_cents), 0) AS fee_cents
             FROM terminals t LEFT JOIN sessions s ON s.terminal_id = t.terminal_id AND s.usage_rolled_at IS NOT NULL AND $__timeFilter(s.started_at)
             WHERE t.region_id = '$region' GROUP BY 1, 2 ORDER BY 1`),
      ),
    );
}
