import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, hasChromium, launchChromium, SHOTS } from "../helpers/browser.ts";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { craftSession } from "../helpers/usage.ts";

// The franchisee's console in Debian's Chromium against the real platform and simulator: a leak
// appears live and is acknowledged; the terminals and the usage of its own terminals show.
if (!hasChromium) console.warn(`SKIPPED: the franchisee console in a browser — ${CHROMIUM} is not installed (apt-get install chromium)`);

let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let browser: Browser;
let bytes = 0;

beforeAll(async () => {
  if (!hasChromium) return;
  tp = await testPlatform({ DEMO_SIGN_IN: "true" });
  await seedFleet(tp, { terminals: ["T1", "LEAK"] });
  // Another franchisee's terminal, which must not show.
  await tp.api("PUT", "/v1/admin/franchisees/FR2", { name: "Other" });
  await tp.api("PUT", "/v1/admin/terminals/T9", { qr: "qr-T9", gatewayId: "G1", regionId: "R1", franchiseeId: "FR2" });
  gw = await simGateway(tp, { T1: {}, LEAK: {}, T9: {} }, { tickMs: 200 });
  // Yesterday's session on T1, rolled into usage.
  const start = Date.now() - 26 * 3_600_000;
  await tp.api("PUT", "/v1/admin/users/U1", {});
  await craftSession(tp.p.db, { id: "S-old", user: "U1", terminal: "T1", franchisee: "FR1", start, end: start + 3_600_000, startMwh: 0, energyMwh: 3_700_000, feeCents: 370 });
  await craftSession(tp.p.db, { id: "S-other", user: "U1", terminal: "T9", franchisee: "FR2", start, end: start + 3_600_000, startMwh: 0, energyMwh: 9_000_000, feeCents: 900 });
  await tp.p.control!.rollUsage();
  browser = await launchChromium();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
  if (bytes) {
    const file = `${SHOTS}/transfer-sizes.json`;
    const sizes = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
    writeFileSync(file, JSON.stringify({ ...sizes, console: bytes }, null, 2) + "\n");
  }
});

/** A signed-in console page of the size and locale given. */
async function consolePage(franchiseeId: string, o: { width: number; height: number; locale: string }): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: o.width, height: o.height }, locale: o.locale, timezoneId: "UTC", deviceScaleFactor: o.width > 1000 ? 1 : 2 });
  const page = await ctx.newPage();
  await page.goto(`${tp.p.url}/console`);
  await page.locator("#fr-id").fill(franchiseeId);
  await page.locator("#signin-form button").click();
  await page.locator("#terminals").waitFor();
  return page;
}

describe.skipIf(!hasChromium)("the franchisee console", () => {
  it("shows its terminals and usage only, a leak live, and acknowledges it", async () => {
    const ctx = await browser.newContext({ viewport: { width: 360, height: 800 }, locale: "en-US", deviceScaleFactor: 2 });
    const page = await ctx.newPage();
    page.on("response", async (r) => {
      if (r.url().endsWith("/console") || r.url().includes("/pages/")) bytes += (await r.body().catch(() => Buffer.alloc(0))).length;
    });
    await page.goto(`${tp.p.url}/console`);
    await page.getByLabel("Your franchisee id").fill("FR1");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#terminal-T1").waitFor();
    await page.locator("#terminal-LEAK").waitFor();
    expect(await page.locator("#terminal-T9").count()).toBe(0);
    // Usage: T1's 3.7 kWh yesterday, not the other franchisee's 9 kWh.
    await expect.poll(() => page.locator("#per-terminal").textContent()).toContain("T1");
    expect(await page.locator("#per-terminal").textContent()).toContain("3,700 Wh");
    expect(await page.locator("#per-terminal").textContent()).not.toContain("T9");
    expect(await page.locator("#bars .bar").count()).toBe(24);
    await expect.poll(() => page.locator("#no-faults").isVisible()).toBe(true);

    gw.terminals.get("LEAK")!.set({ leakA: 0.5 });
    const item = page.locator("#fault-list li", { hasText: "LEAK: current leaking while off" });
    await item.waitFor({ timeout: 20_000 });
    // Counted in words that agree with the number ("seen once", never "1 times").
    const count = (await tp.p.db.query("SELECT count FROM faults WHERE terminal_id = 'LEAK' AND kind = 'off_current_leak'")).rows[0].count;
    await expect.poll(() => item.textContent()).toContain(count === 1 ? "seen once" : `seen ${count} times`);
    expect(await item.textContent()).not.toMatch(/\b1 times/);
    await page.screenshot({ path: `${SHOTS}/console-leak.png`, fullPage: true });
    await item.getByRole("button", { name: /Acknowledge/ }).click();
    await expect.poll(() => item.getAttribute("class")).toBe("acknowledged");
    const f = await until(async () => {
      const r = await tp.p.db.query("SELECT status, acknowledged_by FROM faults WHERE terminal_id = 'LEAK' AND kind = 'off_current_leak'");
      return r.rows[0]?.status === "acknowledged" ? r.rows[0] : null;
    });
    expect(f).toEqual({ status: "acknowledged", acknowledged_by: "FR1" });
    await expect.poll(() => page.locator("#terminal-LEAK").getAttribute("class"), { timeout: 10_000 }).toContain("faulted");
    await page.screenshot({ path: `${SHOTS}/console-acknowledged.png`, fullPage: true });
    gw.terminals.get("LEAK")!.set({ leakA: 0 });
  });

  it("uses a desktop's width: faults beside terminals, dates short in the browser's locale", async () => {
    const page = await consolePage("FR1", { width: 1366, height: 768, locale: "en-GB" });
    await page.locator("#terminal-T1 time").waitFor();
    const main = (await page.locator("main").boundingBox())!;
    const faults = (await page.locator("#faults").boundingBox())!;
    const terminals = (await page.locator("#terminals").boundingBox())!;
    expect(main.width).toBeGreaterThan(1200);
    expect(terminals.x).toBeGreaterThan(faults.x + faults.width - 1);
    expect(terminals.y).toBe(faults.y);
    // The last reading: the time alone when it is today, else the date and minute, as en-GB writes them.
    const time = page.locator("#terminal-T1 time");
    const { at, shown } = await time.evaluate((t: { dateTime: string; textContent: string | null }) => ({ at: Date.parse(t.dateTime), shown: t.textContent }));
    const today = new Date(at).toISOString().slice(0, 10) === new Date().toISOString().slice(0, 10);
    const style: Intl.DateTimeFormatOptions = today ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
    expect(shown).toBe(new Intl.DateTimeFormat("en-GB", { ...style, timeZone: "UTC" }).format(at));
    const box = (await time.boundingBox())!;
    expect(box.height).toBeLessThan(30);
    await page.screenshot({ path: `${SHOTS}/console-desktop.png`, fullPage: true });
  });

  it("labels the hour-of-day chart: every hour, and the scale", async () => {
    const page = await consolePage("FR1", { width: 1366, height: 768, locale: "en-US" });
    await expect.poll(() => page.locator("#hours span").count()).toBe(24);
    const hours = await page.locator("#hours span").allTextContents();
    expect(hours).toEqual(Array.from({ length: 24 }, (_, h) => String(h).padStart(2, "0")));
    // The scale's top is the busiest hour of T1's 3.7 kWh.
    const r = await tp.api("GET", `/v1/franchisee/usage?groupBy=terminal&from=${Date.now() - 30 * 86_400_000}&to=${Date.now()}`, undefined, await tp.token("FR1", "franchisee"));
    const hourly: number[] = Array(24).fill(0);
    for (const g of r.body.groups) g.hourly.forEach((v: number, h: number) => (hourly[h]! += v));
    const max = Math.max(...hourly);
    expect(max).toBeGreaterThan(0);
    expect(await page.locator("#y-max").textContent()).toBe(`${new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 }).format(max)} Wh`);
    expect(await page.locator("#curve").getAttribute("aria-label")).toContain(`${String(hourly.indexOf(max)).padStart(2, "0")}:00`);
    // A phone labels every third hour; all 24 columns stay.
    const phone = await consolePage("FR1", { width: 360, height: 740, locale: "en-US" });
    await expect.poll(() => phone.locator("#hours span").count()).toBe(24);
    expect(await phone.locator("#hours span:visible").count()).toBeGreaterThan(0);
    await phone.locator("#usage").screenshot({ path: `${SHOTS}/console-usage-phone.png` });
    await page.locator("#usage").screenshot({ path: `${SHOTS}/console-usage-desktop.png` });
  });

  it("tells a franchisee with no terminals so", async () => {
    const page = await consolePage("FR-NONE", { width: 360, height: 740, locale: "en-US" });
    await expect.poll(() => page.locator("#no-terminals").isVisible()).toBe(true);
    expect(await page.locator("#no-terminals").textContent()).toBe("You have no terminals yet. When the operator registers a terminal for you, it appears here.");
    expect(await page.locator("#grid .tile").count()).toBe(0);
    await expect.poll(() => page.locator("#no-usage").isVisible()).toBe(true);
    expect(await page.locator("#usage-charts").isVisible()).toBe(false);
    await page.screenshot({ path: `${SHOTS}/console-empty.png`, fullPage: true });
  });

  it("counts in the plural the browser's language asks for", async () => {
    const count = `import("/pages/i18n.js").then(({ plural }) => [0, 1, 2, 21].map((n) => plural("faultCount", n)))`;
    const page = await consolePage("FR-NONE", { width: 360, height: 740, locale: "en-US" });
    expect(await page.evaluate(count)).toEqual(["seen 0 times", "seen once", "seen 2 times", "seen 21 times"]);
    // Chinese has one form.
    const zh = await consolePage("FR-NONE", { width: 1366, height: 768, locale: "zh-CN" });
    expect(await zh.evaluate(count)).toEqual(["出现 0 次", "出现 1 次", "出现 2 次", "出现 21 次"]);
    await zh.screenshot({ path: `${SHOTS}/console-empty-zh-desktop.png`, fullPage: true });
  });
});
