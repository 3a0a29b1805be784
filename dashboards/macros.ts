/**
 * What Grafana's PostgreSQL data source does to a panel's SQL before it runs it, for the macros
 * and variables our dashboards use. The tests run every panel through this against the real
 * database (Grafana cannot run here); the expansions follow Grafana's documented output.
 */
export interface MacroContext {
  from: Date;
  to: Date;
  /** Template variables by name; values are quoted the way Grafana quotes a single value. */
  vars: Record<string, string>;
}

const iso = (d: Date) => `'${d.toISOString()}'`;

const intervalSeconds = (s: string): number => {
  const m = /^'?(\d+)([smhd])'?$/.exec(s.trim());
  if (!m) throw new Error(`unsupported interval ${s}`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as "s" | "m" | "h" | "d"];
};

export function expandMacros(rawSql: string, c: MacroContext): string {
  let q = rawSql
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_, col: string) => `${col.trim()} BETWEEN ${iso(c.from)} AND ${iso(c.to)}`)
    .replace(/\$__timeFrom\(\)/g, iso(c.from))
    .replace(/\$__timeTo\(\)/g, iso(c.to))
    .replace(/\$__timeGroupAlias\(([^,]+),([^)]+)\)/g, (_, col: string, i: string) => `floor(extract(epoch from ${col.trim()})/${intervalSeconds(i)})*${intervalSeconds(i)} AS "time"`)
    .replace(/\$__timeGroup\(([^,]+),([^)]+)\)/g, (_, col: string, i: string) => `floor(extract(epoch from ${col.trim()})/${intervalSeconds(i)})*${intervalSeconds(i)}`);
  q = q.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    if (name.startsWith("__")) throw new Error(`unexpanded macro ${whole}`);
    const v = c.vars[name];
    if (v === undefined) throw new Error(`no value for variable ${name}`);
    // Grafana escapes a single quote in a variable's value by doubling it.
    return v.replace(/'/g, "''");
  });
  return q;
}
