/** Grafana dashboards as code: every dashboard, its data source, and pushing them to a Grafana. */
export { dashboards } from "./all.ts";
export { push } from "./push.ts";
export { datasource } from "./sql-query.ts";
export { prometheus } from "./operations.ts";
export { expandMacros, type MacroContext } from "./macros.ts";
