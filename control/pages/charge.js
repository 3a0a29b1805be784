// The charge page: what a terminal's QR code opens (/t/<terminalId>). See docs/pages.md.
import { api, ApiError, events, setToken, takeTokenFromFragment, token } from "./api.js";
import { t, translatePage, wh, yuan } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const terminalId = decodeURIComponent(location.pathname.split("/").pop() ?? "");
const clock = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
const PRESETS = { energyWh: [500, 1000, 2000, 5000], durationS: [15, 30, 60, 120], amountCents: [2, 5, 10, 20] };
let terminal = null;
let sessionId = null;

function show(...ids) {
  for (const id of ["signin", "choose", "live", "receipt"]) $(id).hidden = !ids.includes(id);
}
function fail(e) {
  const code = e instanceof ApiError ? e.code : "generic";
  const msg = t(`err_${code}`);
  $("error").textContent = msg === `err_${code}` ? `${t("err_generic")} (${e.message})` : msg;
  $("error").hidden = false;
  if (code === "unauthorized") {
    sessionStorage.clear();
    show("signin");
  }
}
const clearError = () => ($("error").hidden = true);

async function loadTerminal() {
  terminal = await api("GET", `/v1/terminals/${encodeURIComponent(terminalId)}`);
  $("terminal").textContent = terminal.terminalId;
  $("state").textContent = t(terminal.state);
  const p = terminal.priceNow;
  $("price").textContent = p
    ? [p.energyCentsPerKwh ? `${yuan(p.energyCentsPerKwh)} ${t("perKwh")}` : "", p.timeCentsPerHour ? `${yuan(p.timeCentsPerHour)} ${t("perHour")}` : ""]
        .filter(Boolean)
        .join(" + ") + ` (${p.start}-${p.end})`
    : t("noPrice");
}

function presets() {
  const kind = document.querySelector("input[name=kind]:checked").value;
  const box = $("presets");
  box.replaceChildren(
    ...PRESETS[kind].map((v) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = kind === "energyWh" ? wh(v) : kind === "durationS" ? `${v} min` : yuan(v * 100);
      b.addEventListener("click", () => ($("value").value = String(v)));
      return b;
    }),
  );
  $("value").value = String(PRESETS[kind][0]);
}

function target() {
  const kind = document.querySelector("input[name=kind]:checked").value;
  const v = Number($("value").value);
  if (kind === "energyWh") return { energyWh: v };
  if (kind === "durationS") return { durationS: Math.round(v * 60) };
  return { amountCents: Math.round(v * 100) };
}

function render(s) {
  if (s.state === "completed" || s.state === "failed") return receipt(s);
  show("live");
  $("phase").textContent = t(s.state);
  $("energy").textContent = wh(s.energyWh);
  $("cost").textContent = yuan(s.feeCents);
  $("stop").disabled = s.state !== "active";
}

function receipt(s) {
  show("receipt");
  $("outcome").textContent = s.state === "failed" ? t("failed_handshake") : `${t("completed")} ${t(`reason_${s.stopReason}`)}`;
  $("r-energy").textContent = wh(s.energyWh);
  $("r-fee").textContent = yuan(s.feeCents);
  $("r-time").textContent = clock(s.durationS);
  document.body.dataset.done = s.state;
}

async function follow(id) {
  sessionId = id;
  await events(`/v1/sessions/${encodeURIComponent(id)}/events`, (name, data) => {
    if (name === "session") render(data);
    if (name === "progress") {
      $("energy").textContent = wh(data.energyWh);
      $("cost").textContent = yuan(data.feeCents);
      $("elapsed").textContent = clock(data.durationS);
      $("power").textContent = `${Math.round(data.powerW)} W`;
    }
  });
  // The stream ends after the final state; read it once more for the receipt's figures.
  render(await api("GET", `/v1/sessions/${encodeURIComponent(id)}`));
}

async function main() {
  translatePage();
  takeTokenFromFragment();
  $("report").addEventListener("click", async () => {
    clearError();
    try {
      await api("POST", "/v1/scan-failures", { terminalId, reason: "reported from the charge page" });
      $("note").textContent = t("reported");
      $("note").hidden = false;
    } catch (e) {
      fail(e);
    }
  });
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    try {
      setToken((await api("POST", "/v1/demo/sign-in", { userId: $("user-id").value })).token);
      show("choose");
    } catch (e) {
      fail(e);
    }
  });
  for (const r of document.querySelectorAll("input[name=kind]")) r.addEventListener("change", presets);
  presets();
  $("charge-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    $("start").disabled = true;
    try {
      const payment = document.querySelector("input[name=payment]:checked").value;
      const s = await api("POST", "/v1/charge-requests", { qr: terminal.qr, target: target(), payment });
      render(s);
      await follow(s.sessionId);
    } catch (e) {
      fail(e);
      $("start").disabled = false;
    }
  });
  $("stop").addEventListener("click", async () => {
    $("stop").disabled = true;
    try {
      await api("POST", `/v1/sessions/${encodeURIComponent(sessionId)}/stop`);
    } catch (e) {
      fail(e);
    }
  });
  try {
    await loadTerminal();
  } catch (e) {
    return fail(e);
  }
  show(token() ? "choose" : "signin");
}

main();
