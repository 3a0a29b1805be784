import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedFleet, testPlatform, type TestPlatform } from "../helpers/platform.ts";

// What the pages rely on besides the protocol: the public terminal status, the demo sign-in (off
// unless asked for) and the pages' files (those and nothing else).
let tp: TestPlatform;
beforeAll(async () => {
  tp = await testPlatform({}, { parts: { cutoff: false, faults: false, writer: false } });
  await seedFleet(tp, {
    terminals: ["T1"],
    periods: [
      { start: "00:00", end: "12:00", energyCentsPerKwh: 50, timeCentsPerHour: 0 },
      { start: "12:00", end: "24:00", energyCentsPerKwh: 120, timeCentsPerHour: 10 },
    ],
  });
});
afterAll(async () => {
  await tp?.[Symbol.asyncDispose]();
});

describe("what the pages use", () => {
  it("a terminal's public status: offline without telemetry, and the price period in force", async () => {
    const r = await fetch(`${tp.p.url}/v1/terminals/T1`);
    expect(r.status).toBe(200);
    const body = (await r.json()) as { priceNow: unknown };
    const hour = Number(new Intl.DateTimeFormat("en-GB", { hour: "2-digit", hourCycle: "h23", timeZone: "Asia/Shanghai" }).format(new Date()));
    expect(body).toMatchObject({ terminalId: "T1", qr: "qr-T1", regionId: "R1", timezone: "Asia/Shanghai", state: "offline" });
    expect(body.priceNow).toEqual(
      hour < 12
        ? { start: "00:00", end: "12:00", energyCentsPerKwh: 50, timeCentsPerHour: 0 }
        : { start: "12:00", end: "24:00", energyCentsPerKwh: 120, timeCentsPerHour: 10 },
    );
    expect((await fetch(`${tp.p.url}/v1/terminals/NOPE`)).status).toBe(404);
  });

  it("the demo sign-in is off unless DEMO_SIGN_IN is set", async () => {
    const r = await fetch(`${tp.p.url}/v1/demo/sign-in`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId: "U1" }) });
    expect(r.status).toBe(404);
  });

  it("serves the pages and their files, and nothing else from that folder", async () => {
    const page = await fetch(`${tp.p.url}/t/T1`);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toContain('<script type="module" src="/pages/charge.js">');
    expect((await fetch(`${tp.p.url}/console`)).status).toBe(200);
    const js = await fetch(`${tp.p.url}/pages/charge.js`);
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
    for (const bad of ["charge.html", "..%2Fhttp%2Fpages.ts", "nothing.js"]) expect((await fetch(`${tp.p.url}/pages/${bad}`)).status, bad).toBe(404);
  });
});
