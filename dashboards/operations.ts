import { DashboardBuilder, DatasourceVariableBuilder, RowBuilder } from "@grafana/grafana-foundation-sdk/dashboard";
import { LegendDisplayMode, LegendPlacement, VizLegendOptionsBuilder } from "@grafana/grafana-foundation-sdk/common";
import { DataqueryBuilder as PromQuery } from "@grafana/grafana-foundation-sdk/prometheus";
import { PanelBuilder as TimeSeries } from "@grafana/grafana-foundation-sdk/timeseries";

/**
 * The Prometheus data source is the operator's own, chosen by the dashboard's `prometheus`
 * variable (`dashboards:push` provisions only PostgreSQL). Every process serves /metrics
 * (docs/operations.md, "Metrics and health").
 */
export const prometheus = { type: "prometheus", uid: "${prometheus}" } as const;

type Query = { expr: string; legend: string };
const q = (expr: string, legend: string): Query => ({ expr, legend });

/** A time series panel of one or more PromQL queries. */
const graph = (title: string, unit: string, queries: Query[], description: string, w = 12) =>
  queries.reduce(
    (p, x, i) => p.withTarget(new PromQuery().datasource(prometheus).expr(x.expr).legendFormat(x.legend).range().refId(String.fromCharCode(65 + i))),
    new TimeSeries()
      .title(title)
      .description(description)
      .datasource(prometheus)
      .unit(unit)
      .span(w)
      .height(8)
      .legend(new VizLegendOptionsBuilder().showLegend(true).displayMode(LegendDisplayMode.List).placement(LegendPlacement.Bottom)),
  );

const p99 = (metric: string, by = "") => `histogram_quantile(0.99, sum by (le${by ? `, ${by}` : ""}) (rate(${metric}_bucket[5m])))`;
const p50 = (metric: string, by = "") => `histogram_quantile(0.5, sum by (le${by ? `, ${by}` : ""}) (rate(${metric}_bucket[5m])))`;

/** What an operator pages on: lag, backlogs, decision latency, command repeats, dead letters, the processes. */
export function operations() {
  return new DashboardBuilder("Voltvend / Operations")
    .uid("voltvend-operations")
    .tags(["voltvend"])
    .time({ from: "now-6h", to: "now" })
    .refresh("30s")
    .withVariable(new DatasourceVariableBuilder("prometheus").label("Prometheus").type("prometheus"))
    .withRow(new RowBuilder("Lag and backlogs"))
    .withPanel(
      graph("Consumer lag", "short", [q("max by (stream, consumer) (vend_consumer_pending)", "{{consumer}}")], "Messages stored and not yet delivered to each durable consumer: growing, its part is behind or down."),
    )
    .withPanel(
      graph("Delivered, not acknowledged", "short", [q("max by (stream, consumer) (vend_consumer_ack_pending)", "{{consumer}}")], "Messages in a consumer's hands: at the max_ack_pending limit, the part is stuck on a dependency."),
    )
    .withPanel(
      graph(
        "Outbox",
        "short",
        [q("max(vend_outbox_backlog)", "messages waiting"), q("max(vend_outbox_oldest_seconds)", "oldest (s)")],
        "Messages committed and not yet acknowledged by JetStream: growing, NATS is away or slow.",
      ),
    )
    .withPanel(
      graph(
        "Stream use",
        "percentunit",
        [q("max by (stream) (vend_stream_bytes) / max by (stream) (vend_stream_max_bytes)", "{{stream}}")],
        "Bytes each stream holds against STREAM_MAX_BYTES: a full stream drops its oldest messages.",
      ),
    )
    .withRow(new RowBuilder("Decisions"))
    .withPanel(
      graph(
        "Cutoff latency",
        "s",
        [
          q(p50("vend_cutoff_decision_seconds"), "reading stored → decided, p50"),
          q(p99("vend_cutoff_decision_seconds"), "reading stored → decided, p99"),
          q(p99("vend_cutoff_to_power_off_seconds"), "decided → power_off sent, p99"),
        ],
        "From the reading that reached a target to power_off on the wire.",
      ),
    )
    .withPanel(
      graph("Fault decision latency", "s", [q(p99("vend_fault_decision_seconds", "change"), "{{change}} p99")], "From the reading that decided a fault change or safety stop to the decision."),
    )
    .withRow(new RowBuilder("Commands and deliveries"))
    .withPanel(
      graph(
        "Command repeats and expiries",
        "short",
        [
          q('sum by (type) (rate(vend_commands_sent_total{repeat="true"}[5m]))', "{{type}} repeated /s"),
          q("sum by (type) (increase(vend_commands_expired_total[1h]))", "{{type}} expired /h"),
        ],
        "Commands repeated because no answer came within CMD_RETRY_MS, and those unanswered by CMD_TIMEOUT_MS: a gateway or terminal not answering.",
      ),
    )
    .withPanel(
      graph(
        "Dead letters by reason",
        "short",
        [
          q("sum by (source, code) (rate(vend_dead_letters_total[5m]))", "{{source}} {{code}}"),
          q("sum by (code) (rate(vend_readings_dead_lettered_total[5m]))", "reading {{code}}"),
        ],
        "Messages refused, by the short code of their reason (docs/protocol.md, \"Readings\").",
      ),
    )
    .withPanel(
      graph(
        "Webhooks",
        "short",
        [q("sum by (outcome) (increase(vend_webhook_failures_total[1h]))", "failed ({{outcome}}) /h"), q("max(vend_webhook_backlog)", "waiting")],
        "Failed webhook attempts and deliveries still to send.",
      ),
    )
    .withPanel(
      graph("HTTP errors", "reqps", [q('sum by (route, status) (rate(vend_http_requests_total{status=~"5.."}[5m]))', "{{status}} {{route}}")], "5xx answers: 503 is an outage of PostgreSQL or NATS, anything else a fault."),
    )
    .withRow(new RowBuilder("Processes"))
    .withPanel(graph("Database pool waits", "short", [q("max by (instance) (vend_db_pool_waiting)", "{{instance}}")], "Callers waiting for a connection: above 0 for long, the pool or the database is the bottleneck.", 8))
    .withPanel(graph("Event loop lag p99", "s", [q("max by (instance) (nodejs_eventloop_lag_p99_seconds)", "{{instance}}")], "A busy process answers late: everything in it waits.", 8))
    .withPanel(
      graph(
        "CPU and memory",
        "short",
        [q("sum by (instance) (rate(process_cpu_seconds_total[5m]))", "{{instance}} CPU (cores)"), q("max by (instance) (process_resident_memory_bytes) / 2^30", "{{instance}} memory (GiB)")],
        "Per process.",
        8,
      ),
    );
}
