import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, hasChromium, launchChromium, SHOTS } from "../helpers/browser.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// The operator's page (/admin) in Debian's Chromium against the real platform: terminals with
// state, location and the maintenance switch, tariffs, users with balance and debt, the audit log;
// the maintenance it switches on shows on the charge page and the franchisee console.
if (!hasChromium) console.warn(`SKIPPED: the admin page in a browser — ${CHROMIUM} is not installed (apt-get install chromium)`);

let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let browser: Browser;

beforeAll(async () => {
  if (!hasChromium) return;
  tp = await testPlatform({ DEMO_SIGN_IN: "true" });
  await seedFleet(tp, { terminals: ["T1", "T2"] });
  await tp.api("PUT", "/v1/admin/terminals/T1", { qr: "qr-T1", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1", location: { latitude: 31.2304, longitude: 121.4737, address: "上海市黄浦区人民大道 1号" } });
  await tp.api("PUT", "/v1/admin/users/U1", { creditLimitCents: 5000 });
  await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1234, reference: "first" });
  // A user in debt: a postpaid session billed past nothing paid.
  await tp.api("PUT", "/v1/admin/users/U2", { creditLimitCents: 1000 });
  await tp.p.db.query("INSERT INTO wallet_ledger (user_id, kind, debt_delta, reference) VALUES ('U2', 'debt', 250, 'test')");
  await tp.p.db.query("UPDATE users SET debt_cents = 250 WHERE user_id = 'U2'");
  gw = await simGateway(tp, { T1: {}, T2: {} }, { tickMs: 200 });
  browser = await launchChromium();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

async function adminPage(o: { width: number; height: number; locale: string }): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: o.width, height: o.height }, locale: o.locale, timezoneId: "UTC" });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error("admin page error:", e.message));
  page.on("console", (m) => m.type() === "error" && console.error("admin page console:", m.text()));
  await page.goto(`${tp.p.url}/admin`);
  return page;
}

describe.skipIf(!hasChromium)("the admin page", () => {
  it("signs in with an admin token and shows terminals, tariffs, users and the audit log", async () => {
    const page = await adminPage({ width: 1366, height: 900, locale: "en-US" });
    await page.getByLabel("Admin token").fill(tp.admin);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#terminal-T1").waitFor({ timeout: 10_000 }).catch(async (e) => {
      throw new Error(`${e}; the page says: ${await page.locator("#error").textContent()}`);
    });
    await expect.poll(() => page.locator("#terminal-T1").getAttribute("data-state")).toMatch(/available|offline/);
    expect(await page.locator("#terminal-T1").textContent()).toContain("上海市黄浦区人民大道 1号");
    expect(await page.locator("#terminal-T1 a").getAttribute("href")).toContain("mlat=31.2304");
    expect(await page.locator("#tariffs-rows").textContent()).toContain("R1");
    expect(await page.locator("#user-U1").textContent()).toContain("12.34");
    expect(await page.locator("#user-U2 td.owed").textContent()).toMatch(/¥2\.50$/);
    expect(await page.locator("#audit-rows").textContent()).toContain("wallet.topup");
    await page.screenshot({ path: `${SHOTS}/admin-desktop.png`, fullPage: true });
  });

  it("switches maintenance on with a reason: audited, shown on the charge page and the console, then back", async () => {
    const page = await adminPage({ width: 1366, height: 900, locale: "en-US" });
    await page.getByLabel("Admin token").fill(tp.admin);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#terminal-T2").waitFor();
    page.once("dialog", (d) => void d.accept("cable replaced"));
    await page.getByRole("switch", { name: "being serviced T2" }).check();
    await expect.poll(() => page.locator("#terminal-T2").getAttribute("data-state")).toBe("maintenance");
    expect(await page.locator("#terminal-T2").textContent()).toContain("cable replaced");
    await expect.poll(() => page.locator("#audit-rows").textContent()).toContain("terminal.maintenance_start");

    // The charge page a user opens by scanning T2's code.
    const charge = await (await browser.newContext({ locale: "zh-CN", timezoneId: "Asia/Shanghai" })).newPage();
    await charge.goto(`${tp.p.url}/t/T2`);
    await expect.poll(() => charge.locator("#state").getAttribute("data-state")).toBe("maintenance");
    expect(await charge.locator("#state").textContent()).toBe("维护中");
    expect(await charge.locator("#maintenance").textContent()).toContain("cable replaced");
    await charge.screenshot({ path: `${SHOTS}/charge-maintenance.png`, fullPage: true });

    // The franchisee's console.
    const con = await (await browser.newContext({ locale: "en-US" })).newPage();
    await con.goto(`${tp.p.url}/console`);
    await con.getByLabel("Your franchisee id").fill("FR1");
    await con.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => con.locator("#terminal-T2").getAttribute("data-state")).toBe("maintenance");
    expect(await con.locator("#terminal-T2").textContent()).toContain("cable replaced");

    await page.getByRole("switch", { name: "being serviced T2" }).uncheck();
    await expect.poll(() => page.locator("#terminal-T2").getAttribute("data-state")).not.toBe("maintenance");
    const t2 = await until(async () => {
      const r = await tp.api("GET", "/v1/admin/terminals/T2");
      return r.body.status === "active" ? r.body : null;
    });
    expect(t2.maintenance).toBeNull();
  });

  it("speaks Chinese to a Chinese browser, and a bad token sends it back to sign in", async () => {
    const page = await adminPage({ width: 390, height: 844, locale: "zh-CN" });
    expect(await page.locator("h1").textContent()).toBe("运营管理");
    await page.locator("#admin-token").fill("not-a-token");
    await page.locator("#signin-form button").click();
    await expect.poll(() => page.locator("#error").isVisible()).toBe(true);
    expect(await page.locator("#signin").isVisible()).toBe(true);
    // A user's token is not an admin's.
    await page.locator("#admin-token").fill(await tp.token("U1", "user"));
    await page.locator("#signin-form button").click();
    await expect.poll(() => page.locator("#error").textContent()).toBe("此账号无权进行该操作，请使用正确的账号登录。");
    await page.screenshot({ path: `${SHOTS}/admin-phone-zh.png`, fullPage: true });
  });
});
