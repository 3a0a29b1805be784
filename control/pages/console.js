// @ts-check
// The franchisee's console (/console): terminals live, open faults as they come, usage. docs/pages.md.
import { api, ApiError, events, setToken, signOut, takeTokenFromFragment, token } from "./api.js";
import { errorWords, plural, t, translatePage, wh, when } from "./i18n.js";

/**
 * @typedef {{ faultId: string, terminalId: string, kind: string, status: string, openedAt: number, count: number }} Fault
 * @typedef {{ terminalId: string, openFaults: Fault[], status?: string,
 *   maintenance?: { reason: string, since: number, expectedReturnAt: number | null } | null,
 *   live: { relay: string, currentA: number, lastReadingAt: number, online: boolean } | null }} TerminalView
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
/** @type {Map<string, Fault>} */
const faults = new Map();

/** @param {unknown} e @param {Record<string, string>} [context] */
function fail(e, context) {
  $("error").textContent = errorWords(e, context);
  $("error").hidden = false;
  if (e instanceof ApiError && e.status === 401) {
    signOut();
    showSignIn();
  }
}
function showSignIn() {
  for (const id of ["faults", "terminals", "usage"]) $(id).hidden = true;
  $("signin").hidden = false;
}

function renderFaults() {
  const open = [...faults.values()].filter((f) => f.status !== "resolved").sort((a, b) => b.openedAt - a.openedAt);
  $("no-faults").hidden = open.length > 0;
  $("fault-list").replaceChildren(
    ...open.map((f) => {
      const li = el("li", { className: f.status, id: `fault-${f.faultId}` });
      li.append(el("strong", {}, `${f.terminalId}: ${t(`kind_${f.kind}`)}`), el("div", { className: "muted" }, when(f.openedAt), ` · ${plural("faultCount", f.count)}`));
      if (f.status === "open") {
        const b = el("button", { type: "button" }, t("acknowledge"));
        b.setAttribute("aria-label", `${t("acknowledge")} ${f.terminalId} ${t(`kind_${f.kind}`)}`);
        b.addEventListener("click", async () => {
          b.disabled = true;
          try {
            await api("POST", `/v1/franchisee/faults/${encodeURIComponent(f.faultId)}/ack`);
            faults.set(f.faultId, { ...f, status: "acknowledged" });
            renderFaults();
          } catch (e) {
            b.disabled = false;
            fail(e);
          }
        });
        li.append(b);
      } else li.append(el("div", { className: "muted" }, t("acknowledgedBy")));
      return li;
    }),
  );
}

async function refreshTerminals() {
  const { terminals } = /** @type {{ terminals: TerminalView[] }} */ (await api("GET", "/v1/franchisee/terminals"));
  $("no-terminals").hidden = terminals.length > 0;
  $("grid").replaceChildren(
    ...terminals.map((x) => {
      // Out of service by a person's decision first: that is why it is silent or refuses charges.
      const state =
        x.status === "retired" ? "retired"
        : x.status === "maintenance" ? "maintenance"
        : x.openFaults.length ? "faulted"
        : x.live?.online ? (x.live.relay === "on" ? "busy" : "available")
        : "offline";
      const tile = el("div", { className: `tile ${state}`, id: `terminal-${x.terminalId}` });
      tile.dataset.state = state;
      tile.append(
        el("strong", {}, x.terminalId),
        el("div", {}, t(state)),
        ...(x.maintenance ? [el("div", { className: "muted maintenance" }, x.maintenance.reason, ...(x.maintenance.expectedReturnAt ? [" · ", when(x.maintenance.expectedReturnAt)] : []))] : []),
        el("div", {}, x.live ? `${t(x.live.relay === "on" ? "relayOn" : "relayOff")} · ${x.live.currentA} A` : "—"),
        el("div", { className: "muted" }, ...(x.live ? [`${t("lastReading")} `, when(x.live.lastReadingAt)] : [])),
      );
      return tile;
    }),
  );
}

/** The hourly curve: 24 bars over hour labels, with the scale on the left, so one bar reads alone. */
function hourChart(/** @type {number[]} */ hourly) {
  const max = Math.max(0, ...hourly);
  const top = max || 1;
  $("y-max").textContent = wh(max);
  $("y-mid").textContent = wh(max / 2);
  const hh = (/** @type {number} */ h) => `${String(h).padStart(2, "0")}`;
  $("bars").replaceChildren(
    ...hourly.map((v, h) => {
      const bar = el("span", { className: "bar", title: `${hh(h)}:00–${hh(h + 1)}:00 ${wh(v)}` });
      bar.style.height = `${(v / top) * 100}%`;
      return el("div", { className: "col" }, bar);
    }),
  );
  $("hours").replaceChildren(...hourly.map((_, h) => el("span", {}, hh(h))));
  const peak = hourly.indexOf(max);
  $("curve").setAttribute("aria-label", t("hourChart", { max: wh(max), hour: `${hh(peak)}:00` }));
}

async function usage() {
  const to = Date.now();
  const r = await api("GET", `/v1/franchisee/usage?groupBy=terminal&from=${to - 30 * 86_400_000}&to=${to}`);
  /** @type {{ terminalId: string, energyWh: number, hourly: number[] }[]} */
  const groups = r.groups;
  /** @type {number[]} */
  const hourly = new Array(24).fill(0);
  for (const g of groups) g.hourly.forEach((v, h) => (hourly[h] = (hourly[h] ?? 0) + v));
  hourChart(hourly);
  // Empty axes say nothing a sentence does not say better.
  const any = groups.some((g) => g.energyWh > 0);
  $("no-usage").hidden = any;
  $("usage-charts").hidden = !any;
  const top = Math.max(1, ...groups.map((g) => g.energyWh));
  $("per-terminal").replaceChildren(
    ...groups.map((g) => {
      const row = el("div", { className: "bar-row" });
      const fill = el("span", { className: "fill" });
      fill.style.width = `${(g.energyWh / top) * 100}%`;
      row.append(el("span", {}, g.terminalId), el("span", {}, fill), el("span", {}, wh(g.energyWh)));
      return row;
    }),
  );
}

async function start() {
  $("signin").hidden = true;
  for (const id of ["faults", "terminals", "usage"]) $(id).hidden = false;
  await Promise.all([refreshTerminals(), usage()]);
  setInterval(() => refreshTerminals().catch(fail), 5000);
  // Live faults: the stream starts with a snapshot of the open ones, then every change.
  for (;;) {
    try {
      await events("/v1/franchisee/faults/stream", (name, data) => {
        if (name === "snapshot") for (const f of data) faults.set(f.faultId, f);
        if (name === "fault") faults.set(data.faultId, data);
        renderFaults();
        if (name === "fault") refreshTerminals().catch(() => {});
      });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return fail(e);
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function main() {
  translatePage();
  takeTokenFromFragment();
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("error").hidden = true;
    const id = /** @type {HTMLInputElement} */ ($("fr-id")).value;
    try {
      setToken((await api("POST", "/v1/demo/sign-in", { franchiseeId: id })).token);
      $("who").textContent = id;
      await start();
    } catch (e) {
      fail(e, { invalid_request: "err_invalid_id", not_found: "err_demo_off" });
    }
  });
  if (token()) await start().catch((e) => fail(e));
  else showSignIn();
}

main();
