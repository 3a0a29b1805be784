import type { Builder, Dataquery } from "@grafana/grafana-foundation-sdk/cog";

/** The data source every panel reads: the platform's PostgreSQL (provisioned by push.ts). */
export const datasource = { type: "grafana-postgresql-datasource", uid: "voltvend-pg" } as const;

/**
 * A raw SQL target of Grafana's PostgreSQL data source. The foundation SDK has no query type for
 * it, so this is the small typed one it asks for: the fields Grafana's SQL query editor saves in
 * code mode. `format` says how Grafana reads the rows: `time_series` wants a `time` column,
 * `table` takes the columns as they are.
 */
export interface SqlQuery {
  refId?: string;
  hide?: boolean;
  datasource: typeof datasource;
  rawSql: string;
  format: "table" | "time_series";
  rawQuery: true;
  editorMode: "code";
  _implementsDataqueryVariant(): void;
}

export class SqlQueryBuilder implements Builder<Dataquery> {
  private readonly q: SqlQuery;

  constructor(rawSql: string, format: SqlQuery["format"] = "table") {
    this.q = { datasource, rawSql: rawSql.trim().replace(/\n\s+/g, "\n  "), format, rawQuery: true, editorMode: "code", _implementsDataqueryVariant() {} };
  }

  refId(refId: string): this {
    this.q.refId = refId;
    return this;
  }

  build(): SqlQuery {
    return this.q;
  }
}

export const sql = (rawSql: string) => new SqlQueryBuilder(rawSql, "table");
export const series = (rawSql: string) => new SqlQueryBuilder(rawSql, "time_series");
