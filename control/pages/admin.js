// @ts-check
// The operator's administration page (/admin): terminals with their state, location and a
// maintenance switch, tariffs, users with balance and debt, and the audit log. docs/pages.md.
import { api, ApiError, setToken, signOut, takeTokenFromFragment, token } from "./api.js";
import { errorWords, t, translatePage, when, yuan } from "./i18n.js";

/**
 * @typedef {{ terminalId: string, state: string, status: string, regionId: string,
 *   location: { latitude: number, longitude: number, address: string | null } | null,
 *   maintenance: { reason: string, since: number, expectedReturnAt: number | null } | null }} Terminal
 * @typedef {{ regionId: string, version: number, effectiveFrom: number, periods: { start: string, end: string, energyCentsPerKwh: number, timeCentsPerHour: number }[] }} Tariff
 * @typedef {{ userId: string, balanceCents: number, debtCents: number, creditLimitCents: number, retiredAt: number | null }} User
 * @typedef {{ auditId: number, at: number, actor: { sub: string, role: string }, action: string, objectType: string, objectId: string, reason: string | null }} AuditEntry
 */

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, unknown>} [props]
 * @param {...(Node | string)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};
const SECTIONS = ["terminals", "tariffs", "users", "audit"];

/** @param {unknown} e */
function fail(e) {
  console.error(e);
  $("error").textContent = errorWords(e);
  $("error").hidden = false;
  if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
    signOut();
    showSignIn();
  }
}
function showSignIn() {
  for (const id of SECTIONS) $(id).hidden = true;
  $("signin").hidden = false;
}

/**
 * A paginated list: the first page replaces the rows, "More" appends the next (the API's cursor).
 * @template T
 * @param {string} name  the section, its rows (`<name>-rows`) and its button (`<name>-more`)
 * @param {string} path
 * @param {(item: T) => HTMLTableRowElement} row
 */
function list(name, path, row) {
  /** @type {string | null} */
  let next = null;
  const more = /** @type {HTMLButtonElement} */ ($(`${name}-more`));
  const load = async (/** @type {boolean} */ first) => {
    const sep = path.includes("?") ? "&" : "?";
    const page = /** @type {{ items: T[], next: string | null }} */ (await api("GET", first || !next ? path : `${path}${sep}cursor=${encodeURIComponent(next)}`));
    const rows = page.items.map(row);
    if (first) $(`${name}-rows`).replaceChildren(...rows);
    else $(`${name}-rows`).append(...rows);
    if (first && rows.length === 0) $(`${name}-rows`).append(el("tr", {}, el("td", { colSpan: 4, className: "muted" }, t("noneYet"))));
    next = page.next;
    more.hidden = !next;
  };
  more.addEventListener("click", () => load(false).catch(fail));
  return () => load(true);
}

/** @param {Terminal} x */
function terminalRow(x) {
  const tr = el("tr", { id: `terminal-${x.terminalId}` });
  tr.dataset.state = x.state;
  const loc = x.location
    ? el("a", { href: `https://www.openstreetmap.org/?mlat=${x.location.latitude}&mlon=${x.location.longitude}#map=17/${x.location.latitude}/${x.location.longitude}`, target: "_blank", rel: "noopener" },
        x.location.address ?? `${x.location.latitude}, ${x.location.longitude}`)
    : "—";
  const why = x.maintenance ? [el("div", { className: "muted" }, x.maintenance.reason)] : [];
  const sw = el("input", { type: "checkbox", checked: x.status === "maintenance", disabled: x.status === "retired", className: "switch" });
  sw.setAttribute("role", "switch");
  sw.setAttribute("aria-label", `${t("maintenance")} ${x.terminalId}`);
  sw.addEventListener("change", async () => {
    sw.disabled = true;
    try {
      if (sw.checked) {
        const reason = prompt(t("reasonPrompt"));
        if (!reason) {
          sw.checked = false;
          return;
        }
        await api("PUT", `/v1/admin/terminals/${encodeURIComponent(x.terminalId)}/maintenance`, { reason });
      } else await api("DELETE", `/v1/admin/terminals/${encodeURIComponent(x.terminalId)}/maintenance`);
      await Promise.all([refresh.terminals(), refresh.audit()]);
    } catch (e) {
      sw.checked = !sw.checked;
      fail(e);
    } finally {
      sw.disabled = false;
    }
  });
  tr.append(el("td", {}, el("strong", {}, x.terminalId), el("div", { className: "muted" }, x.regionId)), el("td", { className: `state ${x.state}` }, t(x.state), ...why), el("td", {}, loc), el("td", {}, sw));
  return tr;
}

/** @param {Tariff} x */
const tariffRow = (x) =>
  el(
    "tr",
    {},
    el("td", {}, x.regionId),
    el("td", {}, String(x.version)),
    el("td", {}, when(x.effectiveFrom)),
    el("td", {}, x.periods.map((p) => `${p.start}-${p.end} ${yuan(p.energyCentsPerKwh)}${p.timeCentsPerHour ? ` + ${yuan(p.timeCentsPerHour)}/h` : ""}`).join("; ")),
  );

/** @param {User} x */
const userRow = (x) => {
  const tr = el("tr", { id: `user-${x.userId}` });
  tr.append(el("td", {}, x.userId, ...(x.retiredAt ? [el("div", { className: "muted" }, t("retired"))] : [])), el("td", { className: "num" }, yuan(x.balanceCents)), el("td", { className: `num${x.debtCents ? " owed" : ""}` }, yuan(x.debtCents)), el("td", { className: "num" }, yuan(x.creditLimitCents)));
  return tr;
};

/** @param {AuditEntry} x */
const auditRow = (x) =>
  el("tr", { id: `audit-${x.auditId}` }, el("td", {}, when(x.at)), el("td", {}, `${x.actor.sub} (${x.actor.role})`), el("td", {}, x.action, ...(x.reason ? [el("div", { className: "muted" }, x.reason)] : [])), el("td", {}, `${x.objectType} ${x.objectId}`));

const refresh = {
  terminals: list("terminals", "/v1/admin/terminals?limit=50", terminalRow),
  tariffs: list("tariffs", "/v1/admin/tariffs?limit=50", tariffRow),
  users: list("users", "/v1/admin/users?limit=50", userRow),
  audit: list("audit", "/v1/admin/audit?limit=50", auditRow),
};

async function start() {
  $("signin").hidden = true;
  await Promise.all(Object.values(refresh).map((f) => f()));
  for (const id of SECTIONS) $(id).hidden = false;
}

async function main() {
  translatePage();
  takeTokenFromFragment();
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("error").hidden = true;
    setToken(/** @type {HTMLInputElement} */ ($("admin-token")).value.trim());
    await start().catch(fail);
  });
  if (token()) await start().catch(fail);
  else showSignIn();
}

main();
