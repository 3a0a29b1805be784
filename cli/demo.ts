import { connect } from "@nats-io/transport-node";
import { signToken } from "../control/index.ts";
import { natsServers } from "../contracts/index.ts";
import { createGateway, type Gateway } from "./sim/index.ts";
import type { Platform } from "./platform.ts";
import type { Screen } from "./screen.ts";
import { isOnline, readLive } from "../processors/index.ts";

const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

/**
 * A simulated fleet on the running platform: two regions, two franchisees, gateways with
 * terminals (one refuses handshakes, one leaks), users who top up and charge, and a one-line
 * summary every second. Everything goes through the real HTTP API and NATS subjects.
 */
export async function startDemo(p: Platform, o: { terminals: number; screen: Screen }): Promise<() => Promise<void>> {
  const sc = o.screen;
  // The pages first (docs/pages.md): a terminal's QR link, and the franchisees' console (demo sign-in).
  sc.line("");
  sc.line(`  charge page   ${p.url}/t/T-1-001   (a terminal's QR code; sign in as any user id, e.g. U-1)`);
  sc.line(`  console       ${p.url}/console   (franchisees; sign in as FR-A or FR-B)`);
  sc.line(`  metrics       ${p.opsUrl}/metrics`);
  sc.line("  Ctrl-C stops the demo.");
  sc.line("");
  const secret = p.config.VEND_JWT_SECRET!;
  const claims = { issuer: p.config.JWT_ISSUER, audience: p.config.JWT_AUDIENCE };
  const admin = await signToken(secret, "demo-admin", "admin", 86_400, claims);
  const call = async (method: string, path: string, body: unknown, token = admin) => {
    const r = await fetch(p.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the demo reads its own API's answers
    return { status: r.status, body: (await r.json()) as any };
  };

  const tou = [
    { start: "00:00", end: "08:00", energyCentsPerKwh: 40, timeCentsPerHour: 0 },
    { start: "08:00", end: "18:00", energyCentsPerKwh: 80, timeCentsPerHour: 0 },
    { start: "18:00", end: "22:00", energyCentsPerKwh: 120, timeCentsPerHour: 0 },
    { start: "22:00", end: "24:00", energyCentsPerKwh: 60, timeCentsPerHour: 0 },
  ];
  // Each region's site capacity (the insights set peak load against it) and where its terminals
  // stand: a row of posts along a street of the city, about 100 m apart.
  const sites = {
    SH: { timezone: "Asia/Shanghai", capacityKw: 40, latitude: 31.2304, longitude: 121.4737, street: "上海市黄浦区人民大道" },
    UR: { timezone: "Asia/Urumqi", capacityKw: 30, latitude: 43.8256, longitude: 87.6168, street: "乌鲁木齐市天山区解放北路" },
  } as const;
  for (const [r, site] of Object.entries(sites)) {
    const tz = site.timezone;
    await call("PUT", `/v1/admin/regions/${r}`, { name: `Region ${r}`, timezone: tz, capacityKw: site.capacityKw });
    await call("PUT", `/v1/admin/regions/${r}/tariff`, { effectiveFrom: 0, periods: tou });
  }
  sc.status("[3/3] fleet: regions and tariffs");
  for (const f of ["FR-A", "FR-B"]) await call("PUT", `/v1/admin/franchisees/${f}`, { name: `Franchisee ${f}` });

  const nc = await connect({ servers: natsServers(p.config.NATS_URL), maxReconnectAttempts: -1 });
  const gateways: Gateway[] = [];
  const qrs: string[] = [];
  for (let g = 0; g < 2; g++) {
    const gatewayId = `GW-${g + 1}`;
    const region = g === 0 ? "SH" : "UR";
    const site = sites[region];
    await call("PUT", `/v1/admin/gateways/${gatewayId}`, { regionId: region });
    const gw = createGateway({ nc, prefix: p.subjects.prefix, gatewayId, tickMs: 1000, onError: () => {} });
    for (let i = 0; i < Math.ceil(o.terminals / 2); i++) {
      const terminalId = `T-${g + 1}-${String(i + 1).padStart(3, "0")}`;
      const qr = `${p.url}/t/${terminalId}`;
      const location = { latitude: Number((site.latitude + i * 0.0009).toFixed(6)), longitude: site.longitude, address: `${site.street} ${i + 1}号桩` };
      await call("PUT", `/v1/admin/terminals/${terminalId}`, { qr, gatewayId, regionId: region, franchiseeId: g === 0 ? "FR-A" : "FR-B", location });
      // One terminal refuses handshakes, one leaks current while off: the demo shows both paths.
      sc.status(`[3/3] fleet: terminal ${qrs.length + 1} of ${2 * Math.ceil(o.terminals / 2)}`);
      gw.addTerminal(terminalId, i === 3 ? { handshake: "refuse" } : i === 5 ? { leakA: 0.4 } : { currentA: 16 + Math.random() * 2 });
      qrs.push(qr);
    }
    await gw.flush();
    gw.start();
    gateways.push(gw);
  }

  const users = Array.from({ length: 10 }, (_, i) => `U-${i + 1}`);
  const tokens = new Map(await Promise.all(users.map(async (u) => [u, await signToken(secret, u, "user", 86_400, claims)] as const)));
  // Users pay in as they would in a real network: an order, paid in the (simulated) provider's app,
  // whose signed notification credits the wallet (docs/sessions-and-money.md, "Paying in").
  const sim = p.control?.simProvider ?? null;
  const payIn = async (u: string, purpose: "topup" | "debt", key: string, amountCents?: number) => {
    const o = await call("POST", "/v1/me/payment-orders", { provider: "sim", purpose, idempotencyKey: key, ...(amountCents ? { amountCents } : {}) }, tokens.get(u));
    if (sim && o.status < 300) await sim.pay(o.body.orderId, { payerRef: `demo-openid-${u}` });
  };
  for (const u of users) {
    await call("PUT", `/v1/admin/users/${u}`, { creditLimitCents: 500 });
    if (sim) await payIn(u, "topup", `demo-${u}-initial`, 5000);
    else await call("POST", `/v1/admin/users/${u}/topups`, { amountCents: 5000, reference: `demo-${u}-initial` });
  }
  // Now and then a user with postpaid debt pays it off through the provider.
  let round = 0;
  const debts = setInterval(() => {
    const u = pick(users);
    if (sim) void payIn(u, "debt", `demo-${u}-debt-${++round}`).catch(() => {});
  }, 30_000);
  sc.line(`[3/3] fleet: 2 regions, 2 franchisees, 2 gateways, ${qrs.length} terminals, ${users.length} users charging at random`);

  // Users arrive every 1.5 s on average and ask for 5-40 Wh, 60-120 s (the shortest allowed is 60) or 1-5 cents.
  const arrivals = setInterval(() => {
    if (Math.random() > 0.66) return;
    const u = pick(users);
    const target = pick([
      { energyWh: 5 + Math.floor(Math.random() * 35) },
      { durationS: 60 + Math.floor(Math.random() * 60) },
      { amountCents: 1 + Math.floor(Math.random() * 5) },
    ]);
    void call("POST", "/v1/charge-requests", { qr: pick(qrs), target, payment: Math.random() < 0.8 ? "prepaid" : "postpaid" }, tokens.get(u)).catch(() => {});
  }, 1000);

  const tty = sc.tty;
  const summary = setInterval(async () => {
    try {
      const { rows } = await p.db.query(`SELECT
          count(*) FILTER (WHERE state IN ('authorizing', 'active', 'stopping'))::int AS live,
          count(*) FILTER (WHERE state = 'completed')::int AS completed,
          count(*) FILTER (WHERE state = 'failed')::int AS failed,
          coalesce(sum(energy_mwh), 0)::bigint AS mwh, coalesce(sum(fee_cents), 0)::bigint AS cents,
          (SELECT count(*) FROM faults WHERE status <> 'resolved')::int AS faults
        FROM sessions`);
      const r = rows[0];
      let online = 0;
      const now = Date.now();
      for await (const k of await p.buckets.live.keys()) {
        // The bucket is written on change; the fault stage answers with the fresh "seen at".
        if (isOnline(await readLive(p.buckets.live, k, { nc: p.nc, subjects: p.subjects }), now, p.config.TERMINAL_OFFLINE_S * 1000)) online++;
      }
      sc.status(
        `terminals ${online}/${qrs.length} online · sessions ${r.live} live, ${r.completed} completed, ${r.failed} failed · ${(r.mwh / 1e6).toFixed(3)} kWh · fees ${(r.cents / 100).toFixed(2)} · open faults ${r.faults}`,
      );
    } catch {
      // the summary is best effort while shutting down
    }
  }, tty ? 1000 : 5000);

  return async () => {
    clearInterval(arrivals);
    clearInterval(debts);
    clearInterval(summary);
    sc.end();
    for (const g of gateways) await g.stop();
    await nc.close();
  };
}
