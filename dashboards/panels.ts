import { PanelBuilder as BarChart } from "@grafana/grafana-foundation-sdk/barchart";
import { ReduceDataOptionsBuilder } from "@grafana/grafana-foundation-sdk/common";
import { PanelBuilder as Heatmap } from "@grafana/grafana-foundation-sdk/heatmap";
import { PanelBuilder as Stat } from "@grafana/grafana-foundation-sdk/stat";
import { PanelBuilder as Table } from "@grafana/grafana-foundation-sdk/table";
import { PanelBuilder as TimeSeries } from "@grafana/grafana-foundation-sdk/timeseries";
import { datasource, type SqlQueryBuilder } from "./sql-query.ts";

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
