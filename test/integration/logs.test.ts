import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedFleet, simGateway, testPlatform, until, type TestPlatform, terminalsSeen } from "../helpers/platform.ts";

// The platform's log at its production level (info), collected as JSON lines.
const lines: Record<string, any>[] = [];
const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;

beforeAll(async () => {
  tp = await testPlatform({ LOG_LEVEL: "info", TERMINAL_OFFLINE_S: "5" }, { log });
  await seedFleet(tp, { terminals: ["T1", "LEAK"], profile: { faultDebounceS: 1, faultClearS: 1 } });
  // The cloud stops T1 (active > stopping > completed); its own limit would end it from active.
  gw = await simGateway(tp, { T1: { limits: false }, LEAK: {} }, { tickMs: 100 });
  await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1000, reference: "r1" });
  await terminalsSeen(tp, gw);
});

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

describe("logs at info", () => {
  it("carry no line per request, and one line per session state change with the session, terminal, gateway and franchisee ids", async () => {
    const user = await tp.token("U1", "user");
    const created = await until(async () => {
      const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 2 }, payment: "prepaid" }, user);
      return r.status === 201 ? r.body : null;
    });
    const id = created.sessionId as string;
    await until(async () => (await tp.api("GET", `/v1/sessions/${id}`, undefined, user)).body.state === "completed");
    const changes = await until(async () => {
      const c = lines.filter((l) => l.msg === "session state changed" && l.sessionId === id);
      return c.some((l) => l.to === "completed") ? c : null;
    });
    expect(changes.map((l) => `${l.from}>${l.to}`)).toEqual(["null>authorizing", "authorizing>active", "active>stopping", "stopping>completed"]);
    for (const l of changes) {
      expect(l).toMatchObject({ level: 30, sessionId: id, terminalId: "T1", gatewayId: "G1", franchiseeId: "FR1" });
    }
    expect(changes.at(-1)).toMatchObject({ reason: "target_reached" });
    // Fastify's own "incoming request" / "request completed" lines, or any line with a request's url, are not at info.
    expect(lines.filter((l) => l.req || l.res || /request/.test(l.msg ?? ""))).toEqual([]);
  });

  it("say each fault change in one line with the fault, terminal, gateway and franchisee ids", async () => {
    gw.terminals.get("LEAK")!.set({ leakA: 0.5 });
    const opened = await until(async () => lines.find((l) => l.msg === "fault changed" && l.terminalId === "LEAK" && l.status === "open"));
    expect(opened).toMatchObject({ level: 30, kind: "off_current_leak", terminalId: "LEAK", gatewayId: "G1", franchiseeId: "FR1" });
    expect(opened.faultId).toEqual(expect.any(String));
    gw.terminals.get("LEAK")!.set({ leakA: 0 });
    const resolved = await until(async () => lines.find((l) => l.msg === "fault changed" && l.faultId === opened.faultId && l.status === "resolved"));
    expect(resolved).toMatchObject({ terminalId: "LEAK", gatewayId: "G1", franchiseeId: "FR1" });
  });
});
