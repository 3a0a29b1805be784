// The franchisee's console (/console): terminals live, open faults as they come, usage. docs/pages.md.
import { api, ApiError, events, setToken, takeTokenFromFragment, token } from "./api.js";
import { lang, t, translatePage, wh } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const time = (ms) => new Intl.DateTimeFormat(lang, { dateStyle: "short", timeStyle: "medium" }).format(new Date(ms));
const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};
const faults = new Map();

function fail(e) {
  $("error").textContent = e instanceof ApiError && e.code === "unauthorized" ? t("err_unauthorized") : `${t("err_generic")} (${e.message})`;
  $("error").hidden = false;
  if (e instanceof ApiError && e.code === "unauthorized") {
    sessionStorage.clear();
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
      li.append(el("strong", {}, `${f.terminalId}: ${t(`kind_${f.kind}`)}`), el("div", { className: "muted" }, `${time(f.openedAt)} · ${f.count} ${t("faultCount")}`));
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
  const { terminals } = await api("GET", "/v1/franchisee/terminals");
  $("grid").replaceChildren(
    ...terminals.map((x) => {
      const state = x.openFaults.length ? "faulted" : x.live?.online ? (x.live.relay === "on" ? "busy" : "available") : "offline";
      const tile = el("div", { className: `tile ${state}`, id: `terminal-${x.terminalId}` });
      tile.append(
        el("strong", {}, x.terminalId),
        el("div", {}, t(state)),
        el("div", {}, x.live ? `${t(x.live.relay === "on" ? "relayOn" : "relayOff")} · ${x.live.currentA} A` : "—"),
        el("div", { className: "muted" }, x.live ? `${t("lastReading")} ${time(x.live.lastReadingAt)}` : ""),
      );
      return tile;
    }),
  );
}

async function usage() {
  const to = Date.now();
  const r = await api("GET", `/v1/franchisee/usage?groupBy=terminal&from=${to - 30 * 86_400_000}&to=${to}`);
  const hourly = new Array(24).fill(0);
  for (const g of r.groups) g.hourly.forEach((v, h) => (hourly[h] += v));
  const max = Math.max(1, ...hourly);
  // A small SVG bar chart: 24 bars, no charting library needed for this much.
  const ns = "http://www.w3.org/2000/svg";
  $("curve").replaceChildren(
    ...hourly.map((v, h) => {
      const rect = document.createElementNS(ns, "rect");
      const height = (v / max) * 96;
      rect.setAttribute("x", String(h * 10 + 1));
      rect.setAttribute("width", "8");
      rect.setAttribute("y", String(100 - height));
      rect.setAttribute("height", String(height));
      const title = document.createElementNS(ns, "title");
      title.textContent = `${String(h).padStart(2, "0")}:00 ${wh(v)}`;
      rect.append(title);
      return rect;
    }),
  );
  const top = Math.max(1, ...r.groups.map((g) => g.energyWh));
  $("per-terminal").replaceChildren(
    ...r.groups.map((g) => {
      const row = el("div", { className: "bar" });
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
      if (e instanceof ApiError && e.status === 401) return fail(new ApiError(401, "unauthorized", e.message));
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
    try {
      setToken((await api("POST", "/v1/demo/sign-in", { franchiseeId: $("fr-id").value })).token);
      $("who").textContent = $("fr-id").value;
      await start();
    } catch (e) {
      fail(e);
    }
  });
  if (token()) await start().catch(fail);
  else showSignIn();
}

main();
