import { existsSync, mkdirSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** Debian's Chromium (apt-get install chromium); `npx playwright install` cannot download one here. */
export const CHROMIUM = "/usr/bin/chromium";
export const hasChromium = existsSync(CHROMIUM);
/** Where the browser tests leave their screenshots and measured transfer sizes. */
export const SHOTS = "test-results/screenshots";

/** Headless, and quiet on the network: without these flags Chromium keeps calling out of a closed machine. */
export function launchChromium(): Promise<Browser> {
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
