import { PanelBuilder as BarChart } from "@grafana/grafana-foundation-sdk/barchart";
import { ReduceDataOptionsBuilder } from "@grafana/grafana-foundation-sdk/common";
import { PanelBuilder as Heatmap } from "@grafana/grafana-foundation-sdk/heatmap";
import { PanelBuilder as Stat } from "@grafana/grafana-foundation-sdk/stat";
import { PanelBuilder as Table } from "@grafana/grafana-foundation-sdk/table";
import { PanelBuilder as TimeSeries } from "@grafana/grafana-foundation-sdk/timeseries";
import { datasource, sql, type SqlQueryBuilder } from "./sql-query.ts";

// Small constructors so each dashboard reads as a list of panels: title, size, query.
type Size = { w: number; h: number };

export const stat = (title: string, unit: string, q: SqlQueryBuilder, s: Size = { w: 6, h: 4 }) =>
  new Stat()
    .title(title)
    .datasource(datasource)
    .unit(unit)
    .span(s.w)
    .height(s.h)
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(["lastNotNull"]))
    .withTarget(q.refId("A"));

export const timeseries = (title: string, unit: string, q: SqlQueryBuilder, s: Size = { w: 12, h: 8 }) =>
  new TimeSeries().title(title).datasource(datasource).unit(unit).span(s.w).height(s.h).withTarget(q.refId("A"));

export const barchart = (title: string, unit: string, q: SqlQueryBuilder, s: Size = { w: 12, h: 8 }) =>
  new BarChart().title(title).datasource(datasource).unit(unit).span(s.w).height(s.h).withTarget(q.refId("A"));

export const table = (title: string, q: SqlQueryBuilder, s: Size = { w: 24, h: 8 }) =>
  new Table().title(title).datasource(datasource).span(s.w).height(s.h).withTarget(q.refId("A"));

export const heatmap = (title: string, unit: string, q: SqlQueryBuilder, s: Size = { w: 24, h: 9 }) =>
  new Heatmap().title(title).datasource(datasource).unit(unit).span(s.w).height(s.h).withTarget(q.refId("A"));

const HOURS = Array.from({ length: 24 }, (_, h) => `u.mwh_${String(h).padStart(2, "0")}`).join(", ");

/**
 * Energy by local hour of day (all 24, in order) of the sessions whose `column` is the template
 * variable's value, started in the dashboard's range (to the hour): the curve of the reports API,
 * from the usage aggregate by hour of start (sql/012_usage_aggregates.sql).
 */
export const energyByHourOfDay = (column: "region_id" | "franchisee_id" | "user_id", variable: string) =>
  barchart(
    "Energy by local hour of day",
    "watth",
    sql(`SELECT lpad(h::text, 2, '0') AS hour, coalesce(sum(c.mwh), 0) / 1000.0 AS energy_wh
         FROM generate_series(0, 23) h
         LEFT JOIN (SELECT x.h - 1 AS h, x.mwh FROM usage_hourly u, unnest(ARRAY[${HOURS}]) WITH ORDINALITY AS x(mwh, h)
                    WHERE u.${column} = '$${variable}' AND $__timeFilter(u.bucket)) c USING (h)
         GROUP BY h ORDER BY h`),
    { w: 24, h: 8 },
  );

/** Energy, or fees in yuan, of the sessions whose `column` is the variable's value, started in the range (to the hour). */
export const sessionTotal = (what: "energy" | "fees", column: "franchisee_id" | "user_id", variable: string) =>
  stat(
    what === "energy" ? "Energy" : "Fees",
    what === "energy" ? "watth" : "currencyCNY",
    sql(`SELECT coalesce(sum(${what === "energy" ? "energy_mwh" : "fee_cents"}), 0)${what === "energy" ? " / 1000.0 AS energy_wh" : "::numeric / 100 AS fees"}
         FROM usage_hourly WHERE ${column} = '$${variable}' AND $__timeFilter(bucket)`),
    { w: 8, h: 4 },
  );
