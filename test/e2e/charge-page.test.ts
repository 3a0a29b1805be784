import { writeFileSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, hasChromium, launchChromium, SHOTS } from "../helpers/browser.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// The user's charge page in a real headless Chromium (Debian's, driven by playwright-core),
// against the real platform and the terminal simulator. Screenshots go to test-results/screenshots.
if (!hasChromium) console.warn(`SKIPPED: the charge page in a browser — ${CHROMIUM} is not installed (apt-get install chromium)`);

let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let browser: Browser;
const transfer: Record<string, number> = {};

beforeAll(async () => {
  if (!hasChromium) return;
  tp = await testPlatform({ DEMO_SIGN_IN: "true" });
  await seedFleet(tp, { terminals: ["T1", "REFUSE"] });
  gw = await simGateway(tp, { T1: {}, REFUSE: { handshake: "refuse" } }, { tickMs: 100 });
  await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1000, reference: "e2e" });
  await new Promise((r) => setTimeout(r, 500)); // the terminals are seen
  browser = await launchChromium();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
  if (Object.keys(transfer).length) writeFileSync(`${SHOTS}/transfer-sizes.json`, JSON.stringify(transfer, null, 2) + "\n");
});

/** A phone-sized page that counts the bytes it loads. */
async function phone(name: string, locale = "en-US"): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 360, height: 740 }, locale, deviceScaleFactor: 2 });
  const page = await ctx.newPage();
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
    await page.screenshot({ path: `${SHOTS}/charge-live.png`, fullPage: true });
    await page.locator("body[data-done=completed]").waitFor({ timeout: 30_000 });
    await page.screenshot({ path: `${SHOTS}/charge-receipt.png`, fullPage: true });

    const user = await tp.token("U1", "user");
    const sessions = await tp.p.db.query("SELECT session_id FROM sessions WHERE user_id = 'U1' AND terminal_id = 'T1'");
    const s = (await tp.api("GET", `/v1/sessions/${sessions.rows[0].session_id}`, undefined, user)).body;
    expect(s).toMatchObject({ state: "completed", stopReason: "target_reached" });
    expect(await page.locator("#outcome").textContent()).toContain("The target was reached.");
    const fee = new Intl.NumberFormat("en-US", { style: "currency", currency: "CNY" }).format(s.feeCents / 100);
    expect(await page.locator("#r-fee").textContent()).toBe(fee);
    expect(await page.locator("#r-energy").textContent()).toBe(`${new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 }).format(s.energyWh)} Wh`);

    // "Report a problem with this code" files a scan failure for the terminal.
    await page.getByRole("button", { name: "Report a problem with this code" }).click();
    await expect.poll(() => page.locator("#note").textContent()).toBe("Thank you. The operator has been told.");
    const f = await tp.p.db.query("SELECT kind, status FROM faults WHERE terminal_id = 'T1'");
    expect(f.rows).toEqual([{ kind: "scan_failure", status: "open" }]);
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
