import { parseDatabaseUrl } from "../contracts/index.ts";
import { dashboards } from "./all.ts";
import { datasource } from "./sql-query.ts";

/**
 * `npm run dashboards:push`: provisions the PostgreSQL data source and every dashboard into the
 * Grafana at GRAFANA_URL with the service-account token GRAFANA_TOKEN (role Editor or Admin).
 * The data source connects with GRAFANA_DATABASE_URL (a read-only role: dashboards only read),
 * or DATABASE_URL. Idempotent: the data source is updated by uid, dashboards overwritten.
 */
export async function push(env: NodeJS.ProcessEnv, fetchImpl: typeof fetch = fetch): Promise<string[]> {
  const base = env.GRAFANA_URL?.replace(/\/$/, "");
  const token = env.GRAFANA_TOKEN;
  const dbUrl = env.GRAFANA_DATABASE_URL ?? env.DATABASE_URL;
  if (!base || !token || !dbUrl) throw new Error("set GRAFANA_URL, GRAFANA_TOKEN and GRAFANA_DATABASE_URL (or DATABASE_URL)");
  // Grafana's PostgreSQL data source connects to one host and follows no failover: a formation's
  // list (DATABASE_URL of npm run pg:ha) cannot be handed to it, so one host is named on purpose.
  const { hosts, urlFor } = parseDatabaseUrl(dbUrl);
  if (hosts.length > 1)
    throw new Error(
      `Grafana's PostgreSQL data source connects to one host, and ${env.GRAFANA_DATABASE_URL ? "GRAFANA_DATABASE_URL" : "DATABASE_URL"} lists ${hosts.length}: set GRAFANA_DATABASE_URL to one of them, the standby's (docs/backup-and-restore.md, "Reads from the standby")`,
    );
  const db = new URL(urlFor(0));
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetchImpl(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: r.status, body: await r.text() };
  };
  const ds = {
    uid: datasource.uid,
    name: "Voltvend PostgreSQL",
    type: datasource.type,
    access: "proxy",
    url: `${db.hostname}:${db.port || "5432"}`,
    user: decodeURIComponent(db.username),
    jsonData: { database: db.pathname.slice(1), sslmode: db.searchParams.get("sslmode") ?? "disable", postgresVersion: 1500, timescaledb: true },
    secureJsonData: { password: decodeURIComponent(db.password) },
  };
  const done: string[] = [];
  const existing = await call("GET", `/api/datasources/uid/${datasource.uid}`);
  const saved = existing.status === 200 ? await call("PUT", `/api/datasources/uid/${datasource.uid}`, ds) : await call("POST", "/api/datasources", ds);
  if (saved.status >= 300) throw new Error(`data source: ${saved.status} ${saved.body}`);
  done.push(`datasource ${datasource.uid}`);
  for (const [name, dashboard] of Object.entries(dashboards())) {
    const r = await call("POST", "/api/dashboards/db", { dashboard: { ...dashboard, id: null }, overwrite: true, message: "voltvend dashboards:push" });
    if (r.status >= 300) throw new Error(`dashboard ${name}: ${r.status} ${r.body}`);
    done.push(`dashboard ${dashboard.uid}`);
  }
  return done;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  push(process.env)
    .then((done) => done.forEach((d) => console.log(d)))
    .catch((e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    });
}
