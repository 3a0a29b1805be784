// @ts-check
// The charge page: what a terminal's QR code opens (/t/<terminalId>). See docs/pages.md.
import { api, ApiError, events, setToken, signOut, takeTokenFromFragment, token } from "./api.js";
import { errorWords, locale, t, translatePage, wh, yuan } from "./i18n.js";

/**
 * @typedef {{ terminalId: string, qr: string, state: string,
 *   priceNow: { start: string, end: string, energyCentsPerKwh: number, timeCentsPerHour: number } | null,
 *   maintenance?: { reason: string, expectedReturnAt: number | null } | null }} Terminal
 * @typedef {{ sessionId: string, state: string, energyWh: number, feeCents: number, durationS: number, stopReason: string | null }} Session
 */

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
/** @param {string} id */
const input = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));
/** @param {string} id */
const button = (id) => /** @type {HTMLButtonElement} */ (document.getElementById(id));
/** @param {string} name */
const checked = (name) => /** @type {HTMLInputElement} */ (document.querySelector(`input[name=${name}]:checked`)).value;

const terminalId = decodeURIComponent(location.pathname.split("/").pop() ?? "");
const clock = (/** @type {number} */ s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
/** @type {Record<string, number[]>} */
const PRESETS = { energyWh: [500, 1000, 2000, 5000], durationS: [15, 30, 60, 120], amountCents: [2, 5, 10, 20] };
/** How often the terminal card asks the platform again while no charge of this page runs. */
const REFRESH_MS = 10_000;
/** @type {Terminal | null} */
let terminal = null;
/** @type {string | null} */
let sessionId = null;
/** While a charge of this page runs, the card shows its state, read from the session's events. */
let charging = false;

/** @param {...string} ids */
function show(...ids) {
  for (const id of ["signin", "choose", "live", "receipt"]) $(id).hidden = !ids.includes(id);
}
/**
 * @param {unknown} e
 * @param {Record<string, string>} [context]
 */
function fail(e, context) {
  $("error").textContent = errorWords(e, context);
  $("error").hidden = false;
  if (e instanceof ApiError && e.status === 401) {
    signOut();
    show("signin");
  }
}
const clearError = () => ($("error").hidden = true);
const note = (/** @type {string} */ text) => {
  $("note").textContent = text;
  $("note").hidden = false;
};

/** The terminal card: its state word, and a data-state the style (and the tests) can read. */
function showState(/** @type {string} */ key) {
  $("state").textContent = t(key);
  $("state").dataset.state = key;
}

async function loadTerminal() {
  terminal = /** @type {Terminal} */ (await api("GET", `/v1/terminals/${encodeURIComponent(terminalId)}`));
  $("terminal").textContent = terminal.terminalId;
  if (!charging) showState(terminal.state);
  // Out of service: why, and when it is expected back, so a person knows whether to wait.
  const m = terminal.maintenance;
  $("maintenance").hidden = !m;
  if (m) {
    const back = m.expectedReturnAt === null ? "" : ` · ${t("backAt", { when: new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(m.expectedReturnAt) })}`;
    $("maintenance").textContent = `${t("maintenanceReason")}: ${m.reason}${back}`;
  }
  const p = terminal.priceNow;
  $("price").textContent = p
    ? [p.energyCentsPerKwh ? `${yuan(p.energyCentsPerKwh)} ${t("perKwh")}` : "", p.timeCentsPerHour ? `${yuan(p.timeCentsPerHour)} ${t("perHour")}` : ""]
        .filter(Boolean)
        .join(" + ") + ` (${p.start}-${p.end})`
    : t("noPrice");
  $("status").hidden = false;
  $("footer").hidden = false;
}

function presets() {
  const kind = checked("kind");
  const values = PRESETS[kind] ?? [];
  $("presets").replaceChildren(
    ...values.map((v) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = kind === "energyWh" ? wh(v) : kind === "durationS" ? `${v} min` : yuan(v * 100);
      b.addEventListener("click", () => (input("value").value = String(v)));
      return b;
    }),
  );
  input("value").value = String(values[0] ?? "");
}

function target() {
  const kind = checked("kind");
  const v = Number(input("value").value);
  if (kind === "energyWh") return { energyWh: v };
  if (kind === "durationS") return { durationS: Math.round(v * 60) };
  return { amountCents: Math.round(v * 100) };
}

/** @param {Session} s */
function render(s) {
  if (s.state === "completed" || s.state === "failed") return receipt(s);
  charging = true;
  showState(`mine_${s.state}`);
  show("live");
  $("phase").textContent = t(s.state);
  $("energy").textContent = wh(s.energyWh);
  $("cost").textContent = yuan(s.feeCents);
  button("stop").disabled = s.state !== "active";
}

/** @param {Session} s */
function receipt(s) {
  charging = false;
  show("receipt");
  $("outcome").textContent = s.state === "failed" ? t("failed_handshake") : `${t("completed")} ${t(`reason_${s.stopReason}`)}`;
  $("r-energy").textContent = wh(s.energyWh);
  $("r-fee").textContent = yuan(s.feeCents);
  $("r-time").textContent = clock(s.durationS);
  // A fee of ¥0.00 after energy flowed looks like an error unless the page says why.
  const free = s.state === "completed" && s.feeCents === 0;
  $("fee-note").textContent = free ? t(s.energyWh > 0 ? "feeUnderCent" : "feeNone") : "";
  $("fee-note").hidden = !free;
  document.body.dataset.done = s.state;
  // The terminal is free again (or not): the card says what the platform says now.
  loadTerminal().catch(() => {});
}

/** @param {string} id */
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

/** Back to the form for another charge at the same terminal. */
function again() {
  clearError();
  $("note").hidden = true;
  delete document.body.dataset.done;
  button("start").disabled = false;
  show("choose");
}

async function main() {
  translatePage();
  takeTokenFromFragment();
  $("report").addEventListener("click", async () => {
    clearError();
    try {
      await api("POST", "/v1/scan-failures", { terminalId, reason: "reported from the charge page" });
      note(t("reported"));
    } catch (e) {
      fail(e);
    }
  });
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    $("note").hidden = true;
    try {
      setToken((await api("POST", "/v1/demo/sign-in", { userId: input("user-id").value })).token);
      show("choose");
    } catch (e) {
      fail(e, { invalid_request: "err_invalid_id", not_found: "err_demo_off" });
    }
  });
  for (const r of document.querySelectorAll("input[name=kind]")) r.addEventListener("change", presets);
  presets();
  $("charge-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    button("start").disabled = true;
    try {
      const s = await api("POST", "/v1/charge-requests", { qr: terminal?.qr, target: target(), payment: checked("payment") });
      render(s);
      await follow(s.sessionId);
    } catch (e) {
      charging = false;
      fail(e, { invalid_request: "err_invalid_target" });
      button("start").disabled = false;
      loadTerminal().catch(() => {});
    }
  });
  button("stop").addEventListener("click", async () => {
    button("stop").disabled = true;
    try {
      await api("POST", `/v1/sessions/${encodeURIComponent(sessionId ?? "")}/stop`);
    } catch (e) {
      fail(e);
    }
  });
  $("again").addEventListener("click", again);
  $("sign-out").addEventListener("click", () => {
    signOut();
    again();
    input("user-id").value = "";
    show("signin");
    note(t("signedOut"));
  });
  try {
    await loadTerminal();
  } catch (e) {
    // Only the error: no card of a terminal that is not there, nothing to sign in to. An id the
    // API refuses outright (a mangled code) is as unknown as one it does not have.
    return fail(e, { invalid_request: "err_terminal_not_found" });
  }
  show(token() ? "choose" : "signin");
  // Someone else's charge starts or ends, a fault opens: the card follows while this page waits.
  setInterval(() => {
    if (!charging && document.visibilityState === "visible") loadTerminal().catch(() => {});
  }, REFRESH_MS);
}

main();
