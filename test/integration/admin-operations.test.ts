import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedFleet, simGateway, terminalsSeen, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";

// Issue 13, admins: read and list the registry, retire, maintenance, the network's sessions and
// faults, location and capacity, and the audit log of every change; all through the public API.
let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;
let user: string;

beforeAll(async () => {
  tp = await testPlatform({ TERMINAL_OFFLINE_S: "2", CONTROL_TICK_MS: "100" });
  await seedFleet(tp, { terminals: ["T1", "T2", "T3", "MNT", "OLD"] });
  gw = await simGateway(tp, { T1: { limits: false }, T2: {}, T3: {}, MNT: {}, OLD: {} }, { tickMs: 200 });
  user = await tp.token("U1", "user");
  expect((await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1000, reference: "r1" })).status).toBe(201);
  await terminalsSeen(tp, gw);
});

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

const offlineFaults = async (terminalId: string) =>
  (await tp.api("GET", `/v1/admin/faults?terminalId=${terminalId}&kind=terminal_offline&state=open,acknowledged`)).body.items as unknown[];

/**
 * `terminalId` falls silent, then `control` (heard once more in between, so its silence is the
 * shorter) until its terminal_offline fault opens: by then the fault stage's ticks have passed
 * `terminalId`'s offline deadline too, and a fault of it would be stored before the control's.
 */
async function silentBefore(terminalId: string, control: string): Promise<void> {
  await until(async () => (await offlineFaults(control)).length === 0);
  gw.terminals.get(terminalId)!.set({ online: false });
  gw.tick();
  gw.terminals.get(control)!.set({ online: false });
  await until(async () => (await offlineFaults(control)).length > 0, 15_000);
}

describe("registry reads, lists and location", () => {
  it("keeps a terminal's location and a region's capacity, and lists a page at a time with filters", async () => {
    const put = await tp.api("PUT", "/v1/admin/terminals/T1", {
      qr: "qr-T1", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1",
      location: { latitude: 22.543096, longitude: 114.057865, address: "深圳市福田区 1号" },
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ terminalId: "T1", status: "active", location: { latitude: 22.543096, longitude: 114.057865, address: "深圳市福田区 1号" } });
    // A PUT without a location (a 1.0 client) keeps it.
    await tp.api("PUT", "/v1/admin/terminals/T1", { qr: "qr-T1", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" });
    expect((await tp.api("GET", "/v1/admin/terminals/T1")).body.location.latitude).toBe(22.543096);
    expect((await tp.api("GET", "/v1/admin/terminals/T1")).body.state).toBe("available");

    const r = await tp.api("PUT", "/v1/admin/regions/R1", { name: "Region 1", timezone: "Asia/Shanghai", capacityKw: 120.5 });
    expect(r.body).toMatchObject({ regionId: "R1", capacityKw: 120.5, retiredAt: null });
    expect((await tp.api("PUT", "/v1/admin/regions/R1", { name: "Region 1", timezone: "Asia/Shanghai", capacityKw: 1.0001 })).status).toBe(400);

    const first = await tp.api("GET", "/v1/admin/terminals?limit=2&regionId=R1");
    expect(first.body.items.map((t: { terminalId: string }) => t.terminalId)).toEqual(["MNT", "OLD"]);
    const seen = [...first.body.items];
    let next = first.body.next;
    while (next) {
      const page = await tp.api("GET", `/v1/admin/terminals?limit=2&regionId=R1&cursor=${next}`);
      seen.push(...page.body.items);
      next = page.body.next;
    }
    expect(seen.map((t) => t.terminalId)).toEqual(["MNT", "OLD", "T1", "T2", "T3"]);
    expect((await tp.api("GET", "/v1/admin/terminals?franchiseeId=NOBODY")).body).toEqual({ items: [], next: null });
    // The other collections' filters: each one names what it keeps, and keeps nothing of another.
    const ids = async (path: string, key: string) => (await tp.api("GET", path)).body.items.map((x: Record<string, string>) => x[key]);
    expect(await ids("/v1/admin/terminals?gatewayId=G1&franchiseeId=FR1", "terminalId")).toEqual(["MNT", "OLD", "T1", "T2", "T3"]);
    expect(await ids("/v1/admin/terminals?gatewayId=G9", "terminalId")).toEqual([]);
    expect(await ids("/v1/admin/gateways?regionId=R1&franchiseeId=FR1", "gatewayId")).toEqual(["G1"]);
    expect(await ids("/v1/admin/gateways?franchiseeId=FR9", "gatewayId")).toEqual([]);
    expect(await ids("/v1/admin/franchisees?regionId=R1", "franchiseeId")).toEqual(["FR1"]);
    expect(await ids("/v1/admin/franchisees?regionId=R9", "franchiseeId")).toEqual([]);
    expect(await ids("/v1/admin/tariffs?regionId=R9", "regionId")).toEqual([]);
    expect(await ids("/v1/admin/users?inDebt=true", "userId")).toEqual([]);
    expect(await ids("/v1/admin/regions?state=retired", "regionId")).toEqual([]);
    expect((await tp.api("GET", "/v1/admin/terminals?cursor=not-a-cursor!")).status).toBe(400);
    expect((await tp.api("GET", "/v1/admin/terminals?cursor=WyJ4Il0x")).status).toBe(400);

    for (const c of ["regions", "franchisees", "gateways", "users", "tariffs"]) {
      const l = await tp.api("GET", `/v1/admin/${c}`);
      expect(l.status, c).toBe(200);
      expect(l.body.items.length, c).toBeGreaterThan(0);
    }
    expect((await tp.api("GET", "/v1/admin/users/U1")).body).toMatchObject({ userId: "U1", balanceCents: 1000, debtCents: 0 });
    expect((await tp.api("GET", "/v1/admin/regions/R1/tariffs/1")).body).toMatchObject({ regionId: "R1", version: 1 });
    expect((await tp.api("GET", "/v1/admin/gateways/NOPE")).status).toBe(404);
    // Not for other roles.
    expect((await tp.api("GET", "/v1/admin/terminals", undefined, user)).status).toBe(403);
  });
});

describe("maintenance", () => {
  it("refuses charges with 409 terminal_maintenance, takes no scan-failure report and raises no offline fault, then returns", async () => {
    const back = 1_900_000_000_000;
    const m = await tp.api("PUT", "/v1/admin/terminals/MNT/maintenance", { reason: "replacing the relay", expectedReturnAt: back });
    expect(m.status).toBe(200);
    expect(m.body).toMatchObject({ status: "maintenance", state: "maintenance", maintenance: { reason: "replacing the relay", expectedReturnAt: back } });

    const charge = await tp.api("POST", "/v1/charge-requests", { qr: "qr-MNT", target: { energyWh: 5 }, payment: "prepaid" }, user);
    expect(charge.status).toBe(409);
    expect(charge.body.error.code).toBe("terminal_maintenance");
    const scan = await tp.api("POST", "/v1/scan-failures", { qr: "qr-MNT", reason: "cannot scan" }, user);
    expect(scan.status).toBe(409);
    expect(scan.body.error.code).toBe("terminal_maintenance");
    // The charge page's public status says so.
    const pub = await fetch(`${tp.p.url}/v1/terminals/MNT`).then((r) => r.json());
    expect(pub).toMatchObject({ state: "maintenance", maintenance: { reason: "replacing the relay", expectedReturnAt: back } });
    // The franchisee's console too.
    const fr = await tp.token("FR1", "franchisee");
    const mine = (await tp.api("GET", "/v1/franchisee/terminals", undefined, fr)).body.terminals.find((t: { terminalId: string }) => t.terminalId === "MNT");
    expect(mine).toMatchObject({ status: "maintenance", maintenance: { reason: "replacing the relay" } });

    // Silent in maintenance (unplugged for the repair): no terminal_offline, where T3 silent gets one.
    await silentBefore("MNT", "T3");
    expect(await offlineFaults("MNT")).toEqual([]);

    gw.terminals.get("MNT")!.set({ online: true });
    gw.terminals.get("T3")!.set({ online: true });
    const end = await tp.api("DELETE", "/v1/admin/terminals/MNT/maintenance");
    expect(end.body).toMatchObject({ status: "active", maintenance: null });
    await until(async () => (await fetch(`${tp.p.url}/v1/terminals/MNT`).then((r) => r.json() as Promise<{ state: string }>)).state === "available");
  });
});

describe("retiring", () => {
  it("a retired terminal refuses charges and raises no offline fault; its history stays; what holds terminals retires after them", async () => {
    // History first: a charge on OLD.
    const s = await tp.api("POST", "/v1/charge-requests", { qr: "qr-OLD", target: { energyWh: 1 }, payment: "prepaid" }, user);
    expect(s.status).toBe(201);
    await until(async () => (await tp.api("GET", `/v1/sessions/${s.body.sessionId}`, undefined, user)).body.state === "completed", 20_000);

    expect((await tp.api("POST", "/v1/admin/gateways/G1/retire", {})).body.error.code).toBe("has_active_terminals");
    const r = await tp.api("POST", "/v1/admin/terminals/OLD/retire", { reason: "site closed" });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ terminalId: "OLD", status: "retired", state: "retired" });
    expect(r.body.retiredAt as number).toBeGreaterThan(0);
    const again = await tp.api("POST", "/v1/admin/terminals/OLD/retire", {});
    expect(again.body.retiredAt).toBe(r.body.retiredAt);

    const charge = await tp.api("POST", "/v1/charge-requests", { qr: "qr-OLD", target: { energyWh: 5 }, payment: "prepaid" }, user);
    expect(charge.body.error.code).toBe("terminal_retired");
    expect((await tp.api("PUT", "/v1/admin/terminals/OLD", { qr: "qr-OLD", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" })).body.error.code).toBe("terminal_retired");

    await silentBefore("OLD", "T3");
    expect(await offlineFaults("OLD")).toEqual([]);
    gw.terminals.get("T3")!.set({ online: true });

    // History stays, and the network's session list finds it by terminal, state and stop reason.
    const hist = await tp.api("GET", "/v1/admin/sessions?terminalId=OLD&state=completed&stopReason=target_reached");
    expect(hist.body.items.map((x: { sessionId: string }) => x.sessionId)).toEqual([s.body.sessionId]);
    expect((await tp.api("GET", "/v1/admin/sessions?terminalId=OLD&stopReason=user_stop")).body.items).toEqual([]);
    expect((await tp.api("GET", `/v1/admin/sessions?userId=U1&from=${s.body.createdAt}&to=${s.body.createdAt + 1}`)).body.items).toHaveLength(1);
    expect((await tp.api("GET", `/v1/admin/sessions?userId=U1&to=${s.body.createdAt}`)).body.items).toHaveLength(0);
    // By region and franchisee: the session is in its own, and in no other.
    expect((await tp.api("GET", "/v1/admin/sessions?terminalId=OLD&regionId=R1&franchiseeId=FR1")).body.items).toHaveLength(1);
    expect((await tp.api("GET", "/v1/admin/sessions?terminalId=OLD&regionId=R9")).body.items).toEqual([]);
    expect((await tp.api("GET", "/v1/admin/sessions?terminalId=OLD&franchiseeId=FR9")).body.items).toEqual([]);
    expect((await tp.api("GET", "/v1/admin/terminals?state=retired")).body.items.map((t: { terminalId: string }) => t.terminalId)).toEqual(["OLD"]);
    expect((await tp.api("GET", "/v1/admin/terminals?state=active")).body.items.map((t: { terminalId: string }) => t.terminalId)).not.toContain("OLD");
  });

  it("a retired user may not charge", async () => {
    await tp.api("PUT", "/v1/admin/users/GONEUSER", {});
    expect((await tp.api("POST", "/v1/admin/users/GONEUSER/retire", {})).status).toBe(200);
    const tok = await tp.token("GONEUSER", "user");
    const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T2", target: { energyWh: 5 }, payment: "postpaid" }, tok);
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe("user_retired");
  });
});

describe("the network's faults and the audit log", () => {
  it("lists faults by terminal and reporting user, and every admin change with who, what, before and after", async () => {
    expect((await tp.api("POST", "/v1/scan-failures", { qr: "qr-T2", reason: "cannot scan" }, user)).status).toBe(202);
    const byUser = await tp.api("GET", "/v1/admin/faults?userId=U1&kind=scan_failure");
    expect(byUser.body.items).toHaveLength(1);
    expect(byUser.body.items[0]).toMatchObject({ terminalId: "T2", evidence: { userId: "U1" } });
    // By time, region and franchisee, as the sessions.
    const opened = byUser.body.items[0].openedAt as number;
    const scans = (q: string) => tp.api("GET", `/v1/admin/faults?kind=scan_failure&terminalId=T2&${q}`).then((r) => r.body.items as unknown[]);
    expect(await scans(`regionId=R1&franchiseeId=FR1&from=${opened}&to=${opened + 1}&state=open`)).toHaveLength(1);
    expect(await scans("regionId=R9")).toEqual([]);
    expect(await scans("franchiseeId=FR9")).toEqual([]);
    expect(await scans(`from=${opened + 1}`)).toEqual([]);
    expect(await scans("state=resolved")).toEqual([]);

    const log = await tp.api("GET", "/v1/admin/audit?objectType=terminal&objectId=MNT");
    expect(log.body.items.map((e: { action: string }) => e.action)).toEqual(["terminal.maintenance_end", "terminal.maintenance_start", "terminal.put"]);
    const start = log.body.items[1];
    expect(start).toMatchObject({ actor: { sub: "admin1", role: "admin" }, reason: "replacing the relay", before: { status: "active" }, after: { status: "maintenance" } });
    const topup = (await tp.api("GET", "/v1/admin/audit?action=wallet.topup")).body.items;
    expect(topup[0]).toMatchObject({ objectId: "U1", before: null, after: { balanceCents: 1000, amountCents: 1000, reference: "r1" } });
    // A repeated top-up reference moves no money and adds no entry.
    await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1000, reference: "r1" });
    expect((await tp.api("GET", "/v1/admin/audit?action=wallet.topup")).body.items).toHaveLength(1);
    const hook = (await tp.api("PUT", "/v1/admin/franchisees/FR1/webhook", { url: "http://127.0.0.1:9/hook", secret: "0123456789abcdef-secret" })).status;
    expect(hook).toBe(200);
    const entry = (await tp.api("GET", "/v1/admin/audit?action=franchisee.webhook")).body.items[0];
    expect(JSON.stringify(entry)).not.toContain("0123456789abcdef-secret");
    // Refused changes leave no entry.
    const refused = (await tp.api("GET", "/v1/admin/audit?action=gateway.retire")).body.items;
    expect(refused).toEqual([]);
  });
});
