import { connect } from "@nats-io/transport-node";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import {
  backup,
  restore,
  down,
  formationState,
  formationUrl,
  killNode,
  restartNode,
  up,
  waitHealthy,
  type Formation,
  createGateway,
} from "../cli/index.ts";
import { signToken } from "../control/index.ts";
import { migrate } from "../sql/index.ts";
import { seed } from "./analytics.ts";
import { NATS_URL, SECRET, startPlatformProcess } from "./harness.ts";

const DAY = 86_400_000;
const TERMINALS = Array.from({ length: 20 }, (_, i) => `T${i + 1}`);

/**
 * Failover under charging load, and backup and restore of a month of data, on a local
 * pg_auto_failover formation (cli/pg-ha.ts). The platform runs as a process of its own; the load
 * is top-ups and charge requests (prepaid, 5 Wh: a few seconds each) from 8 workers.
 */
export async function benchPgHa(o: { port: number; formationPort: number; loadSeconds: number; days: number }) {
  const f: Formation = { dir: "/tmp/vt-bench-pgha", port: o.formationPort, nodes: 2 };
  await down(f, { destroy: true });
  const t0 = performance.now();
  await up(f);
  const formationUpS = (performance.now() - t0) / 1000;
  const platform = await startPlatformProcess("pgha", o.port, {
    DATABASE_URL: formationUrl(f, `bench_pgha_${Date.now().toString(36)}`),
    VEND_STORAGE: "plain",
    MIN_TARGET_DURATION_S: "1",
    CONTROL_TICK_MS: "100",
  });
  try {
    const ok = (r: { status: number; body: unknown }) => {
      if (r.status >= 300) throw new Error(`seed failed: ${r.status} ${JSON.stringify(r.body)}`);
    };
    ok(await platform.call("PUT", "/v1/admin/regions/R1", { name: "Region 1", timezone: "UTC" }));
    ok(await platform.call("PUT", "/v1/admin/franchisees/FR1", { name: "Franchisee 1" }));
    ok(await platform.call("PUT", "/v1/admin/gateways/G1", { regionId: "R1" }));
    for (const t of TERMINALS) ok(await platform.call("PUT", `/v1/admin/terminals/${t}`, { qr: `qr-${t}`, gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" }));
    ok(await platform.call("PUT", "/v1/admin/regions/R1/tariff", { effectiveFrom: 0, periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100, timeCentsPerHour: 0 }] }));
    const users = Array.from({ length: 8 }, (_, i) => `U${i + 1}`);
    const tokens = await Promise.all(users.map((u) => signToken(SECRET, u, "user", 86_400)));
    for (const u of users) ok(await platform.call("POST", `/v1/admin/users/${u}/topups`, { amountCents: 1_000_000, reference: "seed" }));
    const nc = await connect({ servers: NATS_URL });
    const gw = createGateway({ nc, prefix: platform.prefix, gatewayId: "G1", tickMs: 200, onError: () => {} });
    for (const t of TERMINALS) gw.addTerminal(t);
    await gw.flush();
    gw.start();
    for (const t of TERMINALS)
      for (let i = 0; (await platform.call("GET", `/v1/terminals/${t}`)).body?.state !== "available" && i < 100; i++) await new Promise((r) => setTimeout(r, 200));

    // The load: each worker a top-up then a charge request, again and again; 2xx counted per second.
    const ok2xx: { at: number; call: string }[] = [];
    const failed: { at: number; status: number }[] = [];
    let stopped = false;
    let n = 0;
    const worker = async (w: number) => {
      while (!stopped) {
        const k = n++;
        const topup = k % 2 === 0;
        const r = await (topup
          ? platform.call("POST", `/v1/admin/users/${users[w]}/topups`, { amountCents: 1, reference: `b${k}` })
          : platform.call("POST", "/v1/charge-requests", { qr: `qr-${TERMINALS[k % TERMINALS.length]}`, target: { energyWh: 5 }, payment: "prepaid" }, tokens[w])
        ).catch(() => ({ status: 0, body: undefined }));
        if (r.status >= 200 && r.status < 300) ok2xx.push({ at: Date.now(), call: topup ? "topup" : "charge" });
        else if (r.status >= 500 || r.status === 0) failed.push({ at: Date.now(), status: r.status });
      }
    };
    const loadStart = Date.now();
    const workers = users.map((_, w) => worker(w));
    await new Promise((r) => setTimeout(r, o.loadSeconds * 1000));

    const primary = await waitHealthy(f);
    const standby = (await formationState(f)).find((x) => x.name !== primary.name)!;
    const killedAt = Date.now();
    killNode(f, primary.name);
    let promotedAt = 0;
    let readyAt = 0;
    while (!promotedAt || !readyAt) {
      if (!promotedAt) {
        const s = await formationState(f).catch(() => []);
        if (s.some((x) => x.name === standby.name && ["wait_primary", "primary"].includes(x.current))) promotedAt = Date.now();
      }
      if (!readyAt && (await fetch(`${platform.url}/readyz`).then((r) => r.status, () => 0)) === 200 && Date.now() - killedAt > 1000) readyAt = Date.now();
      if (Date.now() - killedAt > 120_000) throw new Error("no failover in 120 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    const firstOkAfter = async () => {
      for (;;) {
        const x = ok2xx.find((a) => a.at > killedAt + 500);
        if (x) return x.at;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const firstOk = await firstOkAfter();
    const afterFrom = Math.max(readyAt, firstOk);
    await new Promise((r) => setTimeout(r, o.loadSeconds * 1000));
    stopped = true;
    await Promise.all(workers);
    const loadEnd = Date.now();

    // The old primary back as a standby: synchronous again.
    const r0 = Date.now();
    restartNode(f, primary.name);
    await waitHealthy(f, 180_000);
    const rejoinS = (Date.now() - r0) / 1000;
    await gw.stop();
    await nc.close();

    const rate = (from: number, to: number) => {
      const xs = ok2xx.filter((a) => a.at >= from && a.at < to);
      const s = (to - from) / 1000;
      return { seconds: s, okPerSecond: xs.length / s, chargesPerSecond: xs.filter((a) => a.call === "charge").length / s, topupsPerSecond: xs.filter((a) => a.call === "topup").length / s };
    };
    const failover = {
      killed: `${primary.name} (pg_autoctl keeper and postgres, SIGKILL)`,
      standbyPrimaryAfterS: (promotedAt - killedAt) / 1000,
      readyzOkAfterS: (readyAt - killedAt) / 1000,
      firstOkWriteAfterS: (firstOk - killedAt) / 1000,
      oldPrimaryRejoinedAsStandbyS: rejoinS,
      rate: { before: rate(loadStart, killedAt), during: rate(killedAt, afterFrom), after: rate(afterFrom, loadEnd) },
      answers5xxOrNone: { total: failed.length, inGap: failed.filter((x) => x.at >= killedAt && x.at <= afterFrom).length },
    };

    // Backup and restore: the analytics benchmark's data set (1000 terminals, 10 000 users) for `days` days.
    const dbName = `bench_pgha_month_${Date.now().toString(36)}`;
    const url = formationUrl(f, dbName);
    const { primaryResolver } = await import("../control/index.ts");
    const primaryUrl = (await primaryResolver(url).primaryUrl()).replace(/\/[^/]*$/, `/${dbName}`);
    await migrate(primaryUrl, () => {}, "plain");
    const db = new pg.Pool({ connectionString: primaryUrl, max: 4 });
    const end = Math.floor(Date.now() / DAY) * DAY;
    const s0 = performance.now();
    const counts = await seed(db, { terminals: 1000, users: 10_000, days: o.days, readingEveryS: 300 }, end);
    const seedS = (performance.now() - s0) / 1000;
    const size = Number((await db.query("SELECT pg_database_size(current_database()) AS s")).rows[0].s);
    const sums = async (u: string) => {
      const c = new pg.Client({ connectionString: u });
      await c.connect();
      const r = await c.query("SELECT (SELECT count(*) FROM sessions)::bigint AS sessions, (SELECT count(*) FROM readings)::bigint AS readings, (SELECT coalesce(sum(fee_cents), 0) FROM sessions)::bigint AS fees");
      await c.end();
      return r.rows[0];
    };
    const before = await sums(primaryUrl);
    await db.end();
    const b0 = performance.now();
    await backup(f, "full");
    const fullS = (performance.now() - b0) / 1000;
    const i0 = performance.now();
    await backup(f, "incr");
    const incrS = (performance.now() - i0) / 1000;
    const repoBytes = Number(execFileSync("du", ["-sb", join(f.dir, "backup-repo")]).toString().split("\t")[0]);
    const to = join(f.dir, "restored");
    rmSync(to, { recursive: true, force: true });
    const x0 = performance.now();
    const restored = await restore(f, { to, port: f.port + 9 });
    const restoreS = (performance.now() - x0) / 1000;
    const after = await sums(restored.url(dbName));
    restored.stop();
    const backupFigures = {
      dataSet: { terminals: 1000, users: 10_000, days: o.days, readingEveryS: 300, ...counts, databaseBytes: size, seedSeconds: seedS },
      fullBackupSeconds: fullS,
      incrementalBackupSeconds: incrS,
      repositoryBytes: repoBytes,
      restoreSeconds: restoreS,
      restoredEqualsOriginal: JSON.stringify(before) === JSON.stringify(after),
      counted: { original: before, restored: after },
    };
    return { formationUpS, failover, backup: backupFigures };
  } finally {
    await platform.stop();
    await down(f, { destroy: true });
  }
}
