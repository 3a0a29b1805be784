import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { Browser } from "playwright-core";
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
    expect(await page.locator("#curve rect").count()).toBe(24);
    await expect.poll(() => page.locator("#no-faults").isVisible()).toBe(true);

    gw.terminals.get("LEAK")!.set({ leakA: 0.5 });
    const item = page.locator("#fault-list li", { hasText: "LEAK: current leaking while off" });
    await item.waitFor({ timeout: 20_000 });
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
});
