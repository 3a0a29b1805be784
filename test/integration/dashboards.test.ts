import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dashboards, expandMacros, push } from "../../dashboards/index.ts";
import { refreshAggregates } from "../../ingest/index.ts";
import { timescaleAvailable } from "../helpers/database.ts";
import { testPlatform, type TestPlatform } from "../helpers/platform.ts";
import { analyticsPlatform, craftSession, flatTariff, put } from "../helpers/usage.ts";

// Grafana cannot run here: every panel's SQL is expanded as Grafana would (macros, template
// variables) and run against the real database with data in it, and its columns checked against
// what the panel type draws.
const hasTimescale = await timescaleAvailable("the dashboards on the TimescaleDB path");

const MIN = 60_000;
const HOUR = 60 * MIN;
const start = Math.floor(Date.now() / HOUR) * HOUR - 2 * 24 * HOUR;
const window = { from: new Date(start - 24 * HOUR), to: new Date(start + 24 * HOUR) };

const NUMERIC = new Set([20, 21, 23, 700, 701, 1700]);
const TEXT = new Set([25, 1043]);
const TIME = new Set([1114, 1184]);

interface Target {
  rawSql: string;
  format: "table" | "time_series";
}
interface Panel {
  type: string;
  title: string;
  datasource?: { type?: string };
  targets?: (Target & { expr?: string })[];
}

const allPanels = Object.entries(dashboards()).flatMap(([name, d]) =>
  ((d.panels ?? []) as Panel[]).filter((p) => p.type !== "row").map((p) => ({ dashboard: name, panel: p })),
);
// PostgreSQL panels run here; Prometheus panels (the operations dashboard) are checked against a real /metrics below.
const panels = allPanels.filter((p) => p.panel.datasource?.type !== "prometheus");
const promPanels = allPanels.filter((p) => p.panel.datasource?.type === "prometheus");

function suite(engine: "plain" | "timescaledb") {
  let tp: TestPlatform;
  beforeAll(async () => {
    tp = await analyticsPlatform(engine);
    const ok = (path: string, body: unknown) => put(tp, path, body);
    await ok("/v1/admin/regions/R1", { name: "Shanghai", timezone: "Asia/Shanghai" });
    await ok("/v1/admin/regions/R1/tariff", flatTariff);
    await ok("/v1/admin/franchisees/FR1", { name: "FR1" });
    await ok("/v1/admin/gateways/G1", { regionId: "R1" });
    await ok("/v1/admin/terminals/T1", { qr: "qr-T1", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" });
    await ok("/v1/admin/users/U1", {});
    await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 500, reference: "r1" });
    const db = tp.p.db;
    // One 90-minute session, a reading a minute, 1 Wh a minute; then idle readings.
    const end = start + 90 * MIN;
    await craftSession(db, { id: "S-1", user: "U1", terminal: "T1", franchisee: "FR1", start, end, startMwh: 0, energyMwh: 90_000, feeCents: 9 });
    const ts = Array.from({ length: 180 }, (_, m) => start + m * MIN);
    await db.query(
      `INSERT INTO readings (terminal_id, ts, gateway_id, seq, relay_on, current_a, voltage_v, power_w, energy_mwh, received_at)
       SELECT 'T1', vv_ms_to_ts(t), 'G1', 0, t <= $2, 0, 220, 3600, least(t - $3, $2 - $3) / 60, vv_ms_to_ts(t) FROM unnest($1::bigint[]) AS u(t)`,
      [ts, end, start],
    );
    await db.query(
      `INSERT INTO faults (fault_id, kind, terminal_id, franchisee_id, region_id, status, evidence, opened_at, last_seen_at)
       VALUES ('F-1', 'off_current_leak', 'T1', 'FR1', 'R1', 'open', '{}', vv_ms_to_ts($1), vv_ms_to_ts($1))`,
      [start + 2 * HOUR],
    );
    await refreshAggregates(db, Date.now(), { since: start - HOUR });
    await tp.p.control!.rollUsage();
  });
  afterAll(async () => {
    await tp?.[Symbol.asyncDispose]();
  });

  it(`has data to show (${engine})`, async () => {
    expect((await tp.p.db.query("SELECT count(*)::int AS n FROM session_usage")).rows[0].n).toBeGreaterThan(0);
  });

  for (const { dashboard, panel } of panels) {
    it(`${dashboard} / ${panel.title}: its SQL runs and gives what a ${panel.type} panel draws`, async () => {
      expect(panel.targets?.length).toBeGreaterThan(0);
      for (const t of panel.targets!) {
        const q = expandMacros(t.rawSql, { ...window, vars: { region: "R1", franchisee: "FR1", user: "U1" } });
        const r = await tp.p.db.query(q);
        expect(r.rows.length, q).toBeGreaterThan(0);
        const types = r.fields.map((f) => f.dataTypeID);
        const numeric = types.filter((x) => NUMERIC.has(x)).length;
        switch (panel.type) {
          case "stat":
            expect(r.rows).toHaveLength(1);
            expect(numeric).toBe(1);
            expect(Number(Object.values(r.rows[0])[0])).toBeGreaterThan(0);
            break;
          case "timeseries":
          case "heatmap":
            expect(t.format).toBe("time_series");
            expect(r.fields[0]!.name).toBe("time");
            expect(NUMERIC.has(types[0]!) || TIME.has(types[0]!)).toBe(true);
            expect(numeric).toBeGreaterThanOrEqual(2); // the time (epoch seconds) and a value
            break;
          case "barchart":
            // A label per hour of day and a value: all 24 hours, in order.
            expect(TEXT.has(types[0]!)).toBe(true);
            expect(numeric).toBe(types.length - 1);
            expect(r.rows.map((x) => x.hour)).toEqual(Array.from({ length: 24 }, (_, h) => String(h).padStart(2, "0")));
            expect(r.rows.some((x) => Number(Object.values(x)[1]) > 0)).toBe(true);
            break;
          case "table":
            expect(r.fields.length).toBeGreaterThan(1);
            break;
          default:
            throw new Error(`no check for panel type ${panel.type}`);
        }
      }
    });
  }

  it("the numbers agree with the reports API", async () => {
    const [energy] = (await tp.p.db.query(expandMacros(panels.find((p) => p.dashboard === "admin-overview" && p.panel.title === "Energy")!.panel.targets![0]!.rawSql, { ...window, vars: {} }))).rows;
    const report = await tp.api("GET", `/v1/admin/reports/usage?groupBy=region&from=${window.from.getTime()}&to=${window.to.getTime()}`);
    expect(Number(energy.energy_wh)).toBe(report.body.groups[0].energyWh);
    expect(report.body.groups[0].energyWh).toBe(90);
  });
}

describe("every dashboard panel's SQL, plain PostgreSQL", () => suite("plain"));
describe.skipIf(!hasTimescale)("every dashboard panel's SQL, TimescaleDB", () => suite("timescaledb"));

describe("dashboards as code", () => {
  it("the committed JSON is what `npm run dashboards:build` makes from the code", () => {
    for (const [name, d] of Object.entries(dashboards())) {
      expect(JSON.parse(readFileSync(new URL(`../../dashboards/json/${name}.json`, import.meta.url), "utf8")), name).toEqual(JSON.parse(JSON.stringify(d)));
    }
  });

  it("macros expand as Grafana's, variables are quoted, an unknown one is an error", () => {
    const c = { from: new Date("2026-11-20T00:00:00Z"), to: new Date("2026-11-21T00:00:00Z"), vars: { user: "O'Brien" } };
    expect(expandMacros("SELECT $__timeGroupAlias(ts, '1h') WHERE $__timeFilter(ts) AND u = '$user'", c)).toBe(
      `SELECT floor(extract(epoch from ts)/3600)*3600 AS "time" WHERE ts BETWEEN '2026-11-20T00:00:00.000Z' AND '2026-11-21T00:00:00.000Z' AND u = 'O''Brien'`,
    );
    expect(() => expandMacros("SELECT '$region'", c)).toThrow("no value for variable region");
  });

  it("push provisions the data source and every dashboard through Grafana's HTTP API", async () => {
    const seen: { method: string; url: string; auth: string | undefined; body: any }[] = [];
    const grafana = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body: body ? JSON.parse(body) : null });
        // No data source yet at first: it is created, not updated.
        res.writeHead(req.method === "GET" ? 404 : 200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => grafana.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(grafana.address() as AddressInfo).port}`;
      const done = await push({ GRAFANA_URL: url, GRAFANA_TOKEN: "tok", GRAFANA_DATABASE_URL: "postgres://grafana_ro:s%40cret@db.example:5433/voltvend" });
      expect(done).toEqual(["datasource voltvend-pg", ...Object.values(dashboards()).map((d) => `dashboard ${d.uid}`)]);
      expect(seen.every((s) => s.auth === "Bearer tok")).toBe(true);
      expect(seen[1]).toMatchObject({
        method: "POST",
        url: "/api/datasources",
        body: { uid: "voltvend-pg", type: "grafana-postgresql-datasource", url: "db.example:5433", user: "grafana_ro", jsonData: { database: "voltvend" }, secureJsonData: { password: "s@cret" } },
      });
      const posted = seen.filter((s) => s.url === "/api/dashboards/db");
      expect(posted.map((p) => p.body.dashboard.uid)).toEqual(Object.values(dashboards()).map((d) => d.uid));
      expect(posted.every((p) => p.body.overwrite === true)).toBe(true);
      await expect(push({ GRAFANA_URL: url })).rejects.toThrow(/GRAFANA_TOKEN/);
      // A formation's list of hosts (npm run pg:ha): Grafana takes one, so push asks for the standby's.
      const before = seen.length;
      await expect(push({ GRAFANA_URL: url, GRAFANA_TOKEN: "tok", DATABASE_URL: "postgres://postgres@127.0.0.1:6001,127.0.0.1:6002/voltvend" })).rejects.toThrow(
        /connects to one host, and DATABASE_URL lists 2: set GRAFANA_DATABASE_URL/,
      );
      expect(seen.length, "nothing pushed").toBe(before);
    } finally {
      grafana.close();
    }
  });
});

describe("the operations dashboard (Prometheus)", () => {
  // PromQL cannot run without Prometheus: each query's metric names are checked against the
  // families a real platform (every part in one process) serves on /metrics.
  let families: Set<string>;
  beforeAll(async () => {
    await using tp = await testPlatform();
    const text = await (await fetch(`${tp.p.url}/metrics`)).text();
    families = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]!));
  });

  it("has panels, each with queries on the Prometheus variable", () => {
    expect(promPanels.length).toBeGreaterThanOrEqual(10);
    for (const { panel } of promPanels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const t of panel.targets!) expect(t.expr, panel.title).toBeTruthy();
    }
  });

  for (const { panel } of promPanels) {
    it(`operations / ${panel.title}: every metric its PromQL names is served by the platform`, () => {
      for (const t of panel.targets!) {
        const expr = t.expr!;
        // Balanced brackets: a typo that Grafana would only show as an error on the panel.
        for (const [a, b] of [["(", ")"], ["[", "]"], ["{", "}"]] as const) expect(expr.split(a).length, expr).toBe(expr.split(b).length);
        const names = [...expr.matchAll(/\b((?:vend|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!);
        expect(names.length, expr).toBeGreaterThan(0);
        for (const n of names) {
          // A histogram's series are its family's name with _bucket, _sum or _count.
          const family = n.replace(/_(bucket|sum|count)$/, "");
          expect(families.has(n) || families.has(family), `${n} in ${expr}`).toBe(true);
          if (/^histogram_quantile/.test(expr) && n.endsWith("_bucket")) expect(families.has(family)).toBe(true);
        }
      }
    });
  }
});
