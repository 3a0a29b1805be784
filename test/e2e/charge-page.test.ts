import { writeFileSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, hasChromium, launchChromium, SHOTS } from "../helpers/browser.ts";
import { seedFleet, simGateway, terminalsSeen, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// The user's charge page in a real headless Chromium (Debian's, driven by playwright-core),
// against the real platform and the terminal simulator. Screenshots go to test-results/screenshots.
if (!hasChromium) console.warn(`SKIPPED: the charge page in a browser — ${CHROMIUM} is not installed (apt-get install chromium)`);

let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let browser: Browser;
const transfer: Record<string, number> = {};
/** Every failed load of a page's own files (not API answers, which may be 4xx by design): the favicon was one. */
const failedLoads: string[] = [];
/** What the browser fetched for the tab's icon, with its status. */
const iconLoads: string[] = [];
/** The DOM as the tests read it (the test program has no DOM types). */
type Input = { validity: { valid: boolean; patternMismatch: boolean } };
const fmtFee = (cents: number) => new Intl.NumberFormat("en-US", { style: "currency", currency: "CNY" }).format(cents / 100);

beforeAll(async () => {
  if (!hasChromium) return;
  tp = await testPlatform({ DEMO_SIGN_IN: "true" });
  await seedFleet(tp, { terminals: ["T1", "T2", "REFUSE"] });
  gw = await simGateway(tp, { T1: {}, T2: {}, REFUSE: { handshake: "refuse" } }, { tickMs: 100 });
  await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1000, reference: "e2e" });
  await terminalsSeen(tp, gw);
  browser = await launchChromium();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
  if (Object.keys(transfer).length) writeFileSync(`${SHOTS}/transfer-sizes.json`, JSON.stringify(transfer, null, 2) + "\n");
});

/** A phone-sized page that counts the bytes it loads (or a desktop-sized one). */
async function phone(name: string, locale = "en-US", viewport = { width: 360, height: 740 }): Promise<Page> {
  const ctx = await browser.newContext({ viewport, locale, deviceScaleFactor: viewport.width > 1000 ? 1 : 2 });
  const page = await ctx.newPage();
  page.on("response", (r) => {
    if (/favicon/.test(r.url())) iconLoads.push(`${r.status()} ${new URL(r.url()).pathname}`);
    if (r.status() >= 400 && !new URL(r.url()).pathname.startsWith("/v1/")) failedLoads.push(`${r.status()} ${r.url()}`);
  });
  page.on("response", async (r) => {
    if (!r.url().includes("/t/") && !r.url().includes("/pages/")) return;
    const body = await r.body().catch(() => Buffer.alloc(0));
    transfer[name] = (transfer[name] ?? 0) + body.length;
  });
  return page;
}

async function signIn(page: Page, user: string) {
  await page.getByLabel("Your user id").fill(user);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Start charging" }).waitFor();
}

describe.skipIf(!hasChromium)("the charge page", () => {
  it("a user charges to an energy target and sees the receipt with the right fee", async () => {
    const page = await phone("charge page");
    await page.goto(`${tp.p.url}/t/T1`);
    await expect.poll(() => page.locator("#state").textContent()).toBe("available");
    expect(await page.locator("#price").textContent()).toContain("per kWh");
    await page.screenshot({ path: `${SHOTS}/charge-start.png`, fullPage: true });
    await signIn(page, "U1");
    await page.getByLabel("energy (Wh)").check();
    await page.getByLabel("Value").fill("5");
    await page.getByLabel("prepaid from my wallet").check();
    await page.getByRole("button", { name: "Start charging" }).click();
    await page.locator("#live").waitFor();
    // The terminal card follows the charge, not the "available" read before it.
    await expect.poll(() => page.locator("#state").textContent()).toBe("in use: your charge");
    await page.screenshot({ path: `${SHOTS}/charge-live.png`, fullPage: true });
    await page.locator("body[data-done=completed]").waitFor({ timeout: 30_000 });
    await page.screenshot({ path: `${SHOTS}/charge-receipt.png`, fullPage: true });

    const user = await tp.token("U1", "user");
    const sessions = await tp.p.db.query("SELECT session_id FROM sessions WHERE user_id = 'U1' AND terminal_id = 'T1'");
    const s = (await tp.api("GET", `/v1/sessions/${sessions.rows[0].session_id}`, undefined, user)).body;
    expect(s).toMatchObject({ state: "completed", stopReason: "target_reached" });
    expect(await page.locator("#outcome").textContent()).toContain("The target was reached.");
    const fee = fmtFee(s.feeCents);
    expect(await page.locator("#r-fee").textContent()).toBe(fee);
    // After the receipt the card reads the terminal again: free.
    await expect.poll(() => page.locator("#state").textContent()).toBe("available");
    expect(await page.locator("#r-energy").textContent()).toBe(`${new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 }).format(s.energyWh)} Wh`);

    // "Report a problem with this code" files a scan failure for the terminal.
    await page.getByRole("button", { name: "Report a problem with this code" }).click();
    await expect.poll(() => page.locator("#note").textContent()).toBe("Thank you. The operator has been told.");
    const f = await tp.p.db.query("SELECT kind, status FROM faults WHERE terminal_id = 'T1'");
    expect(f.rows).toEqual([{ kind: "scan_failure", status: "open" }]);
  });

  it("after a receipt: charge again, a fee under half a cent said as such, then sign out", async () => {
    const page = await phone("charge again");
    await page.goto(`${tp.p.url}/t/T2`);
    await signIn(page, "U1");
    await page.getByLabel("Value").fill("5");
    await page.getByRole("button", { name: "Start charging" }).click();
    await page.locator("body[data-done=completed]").waitFor({ timeout: 30_000 });

    await page.getByRole("button", { name: "Charge again" }).click();
    expect(await page.locator("body").getAttribute("data-done")).toBeNull();
    expect(await page.getByRole("button", { name: "Start charging" }).isEnabled()).toBe(true);
    // 1 Wh at ¥1.00 per kWh is ¥0.001: billed ¥0.00, which the receipt explains.
    await page.getByLabel("Value").fill("1");
    await page.getByRole("button", { name: "Start charging" }).click();
    await page.locator("body[data-done=completed]").waitFor({ timeout: 30_000 });
    const user = await tp.token("U1", "user");
    const ids = await tp.p.db.query("SELECT session_id FROM sessions WHERE terminal_id = 'T2' ORDER BY created_at");
    expect(ids.rows).toHaveLength(2);
    const s = (await tp.api("GET", `/v1/sessions/${ids.rows[1].session_id}`, undefined, user)).body;
    expect(s).toMatchObject({ state: "completed", feeCents: 0 });
    expect(s.energyWh).toBeGreaterThan(0);
    expect(await page.locator("#r-fee").textContent()).toBe(fmtFee(0));
    expect(await page.locator("#fee-note").isVisible()).toBe(true);
    expect(await page.locator("#fee-note").textContent()).toBe(
      "Nothing to pay: this charge cost less than half a cent (¥0.005), and fees are rounded to the nearest cent.",
    );
    await page.screenshot({ path: `${SHOTS}/charge-receipt-free.png`, fullPage: true });

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Your user id").waitFor();
    expect(await page.evaluate("sessionStorage.getItem('voltvend.token')")).toBeNull();
    expect(await page.locator("#note").textContent()).toBe("You are signed out.");
    expect(await page.locator("#receipt").isVisible()).toBe(false);
  });

  it("another phone at the terminal sees it go in use and free again, live", async () => {
    const watcher = await phone("watcher");
    await watcher.goto(`${tp.p.url}/t/T2`);
    await expect.poll(() => watcher.locator("#state").textContent()).toBe("available");
    const other = await tp.token("U3", "user");
    await tp.api("POST", "/v1/admin/users/U3/topups", { amountCents: 1000, reference: "e2e3" });
    const s = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T2", target: { durationS: 120 }, payment: "prepaid" }, other);
    expect(s.status).toBe(201);
    await expect.poll(() => watcher.locator("#state").textContent(), { timeout: 20_000 }).toBe("in use");
    await tp.api("POST", `/v1/sessions/${s.body.sessionId}/stop`, undefined, other);
    await expect.poll(() => watcher.locator("#state").textContent(), { timeout: 20_000 }).toBe("available");
  });

  it("the browser refuses an id the API would refuse, before any request", async () => {
    const page = await phone("invalid id");
    const errors: string[] = [];
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    const signIns: string[] = [];
    page.on("request", (r) => r.url().endsWith("/v1/demo/sign-in") && signIns.push(r.url()));
    await page.goto(`${tp.p.url}/t/T1`);
    await page.getByLabel("Your user id").fill("bad id!");
    await page.getByRole("button", { name: "Sign in" }).click();
    expect(await page.getByLabel("Your user id").evaluate((i: Input) => i.validity.patternMismatch)).toBe(true);
    // A valid id with a dash passes the same pattern (the pattern compiles under Chromium's v flag).
    await page.getByLabel("Your user id").fill("U-1_x");
    expect(await page.getByLabel("Your user id").evaluate((i: Input) => i.validity.valid)).toBe(true);
    expect(signIns).toEqual([]);
    expect(errors.filter((e) => /pattern/i.test(e))).toEqual([]);
    await page.screenshot({ path: `${SHOTS}/charge-invalid-id.png`, fullPage: true });

    // Were it sent anyway (a browser without validation), the answer is said in words, not as a code.
    await page.getByLabel("Your user id").fill("bad id!");
    await page.locator("#signin-form").evaluate((f: { noValidate: boolean }) => (f.noValidate = true));
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.locator("#error").textContent()).toBe("Ids are 1 to 64 letters, digits, _ or -. Please check what you typed.");
    expect(signIns).toHaveLength(1);
  });

  it("an error code without words of its own still reads as a sentence", async () => {
    const page = await phone("error words");
    await page.goto(`${tp.p.url}/t/T1`);
    await page.getByLabel("Your user id").waitFor();
    // A string, so that vitest does not rewrite the import meant for the browser.
    const said = await page.evaluate(`import("/pages/i18n.js").then(({ errorWords }) => [
      errorWords({ code: "something_new", status: 409 }),
      errorWords({ code: "rate_limited", status: 429 }),
      errorWords({ code: "whatever", status: 503 }),
      errorWords({ code: "region_not_found", status: 404 }),
      errorWords(new TypeError("Failed to fetch")),
    ])`);
    expect(said).toEqual([
      "Something went wrong. Please try again.",
      "Too many tries in a short time. Please wait a moment and try again.",
      "The service is busy or being repaired. Please try again in a minute.",
      "This was not found. It may have been removed.",
      "No connection to the service. Please check your network and try again.",
    ]);
  });

  it("an unknown terminal shows only the error, no empty card", async () => {
    const page = await phone("unknown terminal");
    await page.goto(`${tp.p.url}/t/NOPE`);
    await expect.poll(() => page.locator("#error").textContent()).toBe("This code does not belong to a terminal we know.");
    expect(await page.locator("#status").isVisible()).toBe(false);
    expect(await page.locator("#signin").isVisible()).toBe(false);
    expect(await page.locator("#report").isVisible()).toBe(false);
    const text = await page.locator("main").innerText();
    expect(text).not.toContain("State");
    expect(text).not.toContain("Price now");
    expect(text).not.toContain("…");
    await page.screenshot({ path: `${SHOTS}/charge-unknown-terminal.png`, fullPage: true });

    // A mangled code (not even an id) gets the page and the same words, not a JSON error.
    await page.goto(`${tp.p.url}/t/bad!id`);
    await expect.poll(() => page.locator("#error").textContent()).toBe("This code does not belong to a terminal we know.");
    expect(await page.locator("#status").isVisible()).toBe(false);
  });

  it("has an icon, and no page file answers 4xx (the favicon did)", async () => {
    const page = await phone("desktop", "en-US", { width: 1366, height: 768 });
    await page.goto(`${tp.p.url}/t/T1`);
    await expect.poll(() => page.locator("#state").textContent()).toBe("available");
    await page.screenshot({ path: `${SHOTS}/charge-desktop.png`, fullPage: true });
    const href = await page.locator("link[rel=icon]").getAttribute("href");
    expect(href).toBe("/pages/favicon.svg");
    for (const path of [href!, "/favicon.ico"]) {
      const r = await fetch(`${tp.p.url}${path}`);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe("image/svg+xml");
      expect(await r.text()).toContain("<svg");
    }
    // The browser asked for the icon on its own, and got it.
    expect(iconLoads.length).toBeGreaterThan(0);
    expect(iconLoads.every((l) => l.startsWith("200 "))).toBe(true);
    expect(failedLoads).toEqual([]);
  });

  it("a refused handshake ends with a refund, said in words", async () => {
    const page = await phone("refused");
    await page.goto(`${tp.p.url}/t/REFUSE`);
    await signIn(page, "U1");
    const before = (await tp.api("GET", "/v1/me", undefined, await tp.token("U1", "user"))).body;
    await page.getByLabel("Value").fill("1000");
    await page.getByRole("button", { name: "Start charging" }).click();
    // The receipt, or an error said on the page (then the test says which).
    await page.locator("body[data-done=failed], #error:not([hidden])").first().waitFor({ timeout: 30_000 });
    expect(await page.locator("#error").isVisible() ? await page.locator("#error").textContent() : "no error").toBe("no error");
    expect(await page.locator("#outcome").textContent()).toContain("Nothing was charged; any prepaid amount is back in your wallet.");
    await page.screenshot({ path: `${SHOTS}/charge-refused.png`, fullPage: true });
    const after = await until(async () => {
      const me = (await tp.api("GET", "/v1/me", undefined, await tp.token("U1", "user"))).body;
      return me.heldCents === 0 ? me : null;
    });
    expect(after.balanceCents).toBe(before.balanceCents);
  });

  it("speaks Chinese to a zh-CN browser, and says why a busy terminal cannot start", async () => {
    const other = await tp.token("U2", "user");
    await tp.api("POST", "/v1/admin/users/U2/topups", { amountCents: 1000, reference: "e2e2" });
    const busy = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { durationS: 30 }, payment: "prepaid" }, other);
    expect(busy.status).toBe(201);
    const page = await phone("zh-CN", "zh-CN");
    await page.goto(`${tp.p.url}/t/T1`);
    await expect.poll(() => page.locator("html").getAttribute("lang")).toBe("zh-CN");
    await expect.poll(() => page.locator("#state").textContent()).toBe("使用中");
    await page.getByLabel("用户编号").fill("U1");
    await page.getByRole("button", { name: "登录" }).click();
    await page.getByRole("button", { name: "开始充电" }).click();
    await expect.poll(() => page.locator("#error").textContent()).toBe("该充电桩正在使用，请稍后再试。");
    await page.screenshot({ path: `${SHOTS}/charge-busy-zh.png`, fullPage: true });
    await tp.api("POST", `/v1/sessions/${busy.body.sessionId}/stop`, undefined, other);
  });
});
