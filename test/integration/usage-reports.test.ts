import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PACKAGE_PART_BYTES, publishDuePackages } from "../../control/internal.ts";
import { timescaleAvailable } from "../helpers/database.ts";
import { streamMessages } from "../helpers/streams.ts";
import type { TestPlatform } from "../helpers/platform.ts";
import { analyticsPlatform, craftSession, put } from "../helpers/usage.ts";

// Usage reports over sessions with known readings, in Asia/Shanghai (UTC+8): one session crosses
// the 22:00 tariff boundary and local midnight and loses an hour of readings; the hours must
// still sum to the billed energy, and every grouping must add up exactly.
const hasTimescale = await timescaleAvailable("the usage reports on the TimescaleDB path");

const MIN = 60_000;
/** A local time in Asia/Shanghai as epoch ms. */
const sh = (iso: string) => Date.parse(`${iso}+08:00`);

interface Crafted {
  id: string;
  user: string;
  terminal: string;
  franchisee: string;
  start: number;
  minutes: number;
  /** mWh per minute, and the register at power-on. */
  rate: number;
  startMwh: number;
  /** Billed energy (the power_off_ack register minus the power_on_ack one). */
  billedMwh: number;
  feeCents: number;
  /** Minutes after the start with no stored reading (lost). */
  lost?: [number, number];
}

const sessions: Crafted[] = [
  // 21:30 to 00:45 the next day: readings every minute, none from 23:11 to 00:09.
  { id: "S-A", user: "U1", terminal: "T1", franchisee: "FR1", start: sh("2026-11-20T21:30:00"), minutes: 195, rate: 1000, startMwh: 1_000_000, billedMwh: 195_500, feeCents: 17, lost: [101, 159] },
  { id: "S-B", user: "U2", terminal: "T1", franchisee: "FR1", start: sh("2026-11-21T08:00:00"), minutes: 30, rate: 500, startMwh: 1_300_000, billedMwh: 15_000, feeCents: 2 },
  { id: "S-C", user: "U1", terminal: "T3", franchisee: "FR2", start: sh("2026-11-21T12:00:00"), minutes: 10, rate: 500, startMwh: 50_000, billedMwh: 5_000, feeCents: 1 },
  // Zero energy (the car was full), a time fee all the same: counted, with its fee.
  { id: "S-E", user: "U3", terminal: "T3", franchisee: "FR2", start: sh("2026-11-21T15:00:00"), minutes: 5, rate: 0, startMwh: 55_000, billedMwh: 0, feeCents: 3 },
  // Before the report's range: not counted.
  { id: "S-D", user: "U1", terminal: "T1", franchisee: "FR1", start: sh("2026-11-19T10:00:00"), minutes: 10, rate: 500, startMwh: 900_000, billedMwh: 5_000, feeCents: 1 },
];
const range = { from: sh("2026-11-20T00:00:00"), to: sh("2026-11-22T00:00:00") };

function hourly(entries: Record<number, number>): number[] {
  const h = new Array<number>(24).fill(0);
  for (const [k, v] of Object.entries(entries)) h[Number(k)] = v;
  return h;
}
// S-A: 21:30-21:59 → 29 Wh; 22:00-22:59 → 60; 23:00-23:10, then nothing until 00:10 → 11; the rest
// (the lost 23:11-00:09 and the hour after midnight, up to the billed register) → 95.5.
const A = hourly({ 21: 29, 22: 60, 23: 11, 0: 95.5 });
const B = hourly({ 8: 15 });
const C = hourly({ 12: 5 });
const add = (...xs: number[][]) => xs.reduce((a, b) => a.map((v, i) => Math.round((v + b[i]!) * 1000) / 1000));

function suite(engine: "plain" | "timescaledb") {
  let tp: TestPlatform;
  beforeAll(async () => {
    tp = await analyticsPlatform(engine);
    const ok = (_m: "PUT", path: string, body: unknown) => put(tp, path, body);
    await ok("PUT", "/v1/admin/regions/R1", { name: "Shanghai", timezone: "Asia/Shanghai" });
    await ok("PUT", "/v1/admin/regions/R1/tariff", {
      effectiveFrom: 0,
      periods: [
        { start: "00:00", end: "08:00", energyCentsPerKwh: 50, timeCentsPerHour: 0 },
        { start: "08:00", end: "22:00", energyCentsPerKwh: 120, timeCentsPerHour: 0 },
        { start: "22:00", end: "24:00", energyCentsPerKwh: 50, timeCentsPerHour: 0 },
      ],
    });
    for (const f of ["FR1", "FR2"]) await ok("PUT", `/v1/admin/franchisees/${f}`, { name: f });
    await ok("PUT", "/v1/admin/gateways/G1", { regionId: "R1" });
    await ok("PUT", "/v1/admin/terminals/T1", { qr: "qr-T1", gatewayId: "G1", regionId: "R1", franchiseeId: "FR1" });
    await ok("PUT", "/v1/admin/terminals/T3", { qr: "qr-T3", gatewayId: "G1", regionId: "R1", franchiseeId: "FR2" });
    for (const u of ["U1", "U2", "U3"]) await ok("PUT", `/v1/admin/users/${u}`, {});

    const db = tp.p.db;
    for (const s of sessions) {
      const end = s.start + s.minutes * MIN + 30_000; // power_off_ack half a minute after the last reading
      await craftSession(db, { id: s.id, user: s.user, terminal: s.terminal, franchisee: s.franchisee, start: s.start, end, startMwh: s.startMwh, energyMwh: s.billedMwh, feeCents: s.feeCents });
      const ts: number[] = [];
      const mwh: number[] = [];
      for (let m = 0; m <= s.minutes; m++) {
        if (s.lost && m >= s.lost[0] && m <= s.lost[1]) continue;
        ts.push(s.start + m * MIN);
        mwh.push(s.startMwh + m * s.rate);
      }
      await db.query(
        `INSERT INTO readings (terminal_id, ts, gateway_id, seq, relay_on, current_a, voltage_v, power_w, energy_mwh, session_id, received_at)
         SELECT $1, vv_ms_to_ts(t), 'G1', i, true, 16.5, 220, 3630, e, $2, vv_ms_to_ts(t) FROM unnest($3::bigint[], $4::bigint[]) WITH ORDINALITY AS u(t, e, i)`,
        [s.terminal, s.id, ts, mwh],
      );
    }
    // A reading after the last session's end on each terminal: the writer has caught up.
    for (const t of ["T1", "T3"])
      await db.query(
        `INSERT INTO readings (terminal_id, ts, gateway_id, seq, relay_on, current_a, voltage_v, power_w, energy_mwh, received_at)
         VALUES ($1, vv_ms_to_ts($2), 'G1', 0, false, 0, 220, 0, 2000000, vv_ms_to_ts($2))`,
        [t, sh("2026-11-23T00:00:00")],
      );
    // A resolved leak on T1 (FR1) and an open scan failure on T3 (FR2), in the range.
    for (const [id, kind, t, f, status, at] of [
      ["F-1", "off_current_leak", "T1", "FR1", "resolved", sh("2026-11-21T03:00:00")],
      ["F-2", "scan_failure", "T3", "FR2", "open", sh("2026-11-21T13:00:00")],
    ] as const)
      await db.query(
        `INSERT INTO faults (fault_id, kind, terminal_id, franchisee_id, region_id, status, evidence, opened_at, last_seen_at, resolved_at)
         VALUES ($1, $2, $3, $4, 'R1', $5, '{}', vv_ms_to_ts($6), vv_ms_to_ts($6), CASE WHEN $5 = 'resolved' THEN vv_ms_to_ts($6 + 60000) END)`,
        [id, kind, t, f, status, at],
      );
    await tp.p.control!.rollUsage();
  });
  afterAll(async () => {
    await tp?.[Symbol.asyncDispose]();
  });

  const get = (path: string, token?: string) => tp.api("GET", `${path}${path.includes("?") ? "&" : "?"}from=${range.from}&to=${range.to}`, undefined, token);

  it(`runs on the ${engine} path`, async () => {
    expect((await tp.p.db.query("SELECT vv_storage_engine() AS e")).rows[0].e).toBe(engine);
  });

  it("rolls each finished session once, its hours summing to the billed energy", async () => {
    const r = await tp.p.db.query("SELECT session_id, sum(energy_mwh)::int AS mwh FROM session_usage GROUP BY 1 ORDER BY 1");
    expect(r.rows).toEqual([...sessions].sort((a, b) => a.id.localeCompare(b.id)).map((s) => ({ session_id: s.id, mwh: s.billedMwh })));
    await tp.p.control!.rollUsage();
    const again = await tp.p.db.query("SELECT count(*)::int AS n, sum(energy_mwh)::int AS mwh FROM session_usage");
    expect(again.rows[0]).toEqual({ n: 4 + 1 + 1 + 1 + 1, mwh: sessions.reduce((a, s) => a + s.billedMwh, 0) });
  });

  it("per user: totals, fees and the local-hour curve, exact; a session before the range is left out", async () => {
    const r = await get("/v1/admin/reports/usage?groupBy=user");
    expect(r.status).toBe(200);
    expect(r.body.groups).toEqual([
      { userId: "U1", energyWh: 200.5, feeCents: 18, sessions: 2, hourly: add(A, C) },
      { userId: "U2", energyWh: 15, feeCents: 2, sessions: 1, hourly: B },
      { userId: "U3", energyWh: 0, feeCents: 3, sessions: 1, hourly: hourly({}) },
    ]);
    for (const g of r.body.groups) expect(Math.round(g.hourly.reduce((a: number, b: number) => a + b * 1000, 0))).toBe(g.energyWh * 1000);
  });

  it("per terminal, region and franchisee", async () => {
    expect((await get("/v1/admin/reports/usage?groupBy=terminal")).body.groups).toEqual([
      { terminalId: "T1", energyWh: 210.5, feeCents: 19, sessions: 2, hourly: add(A, B) },
      { terminalId: "T3", energyWh: 5, feeCents: 4, sessions: 2, hourly: C },
    ]);
    expect((await get("/v1/admin/reports/usage?groupBy=region")).body.groups).toEqual([
      { regionId: "R1", energyWh: 215.5, feeCents: 23, sessions: 4, hourly: add(A, B, C) },
    ]);
    expect((await get("/v1/admin/reports/usage?groupBy=franchisee")).body.groups).toEqual([
      { franchiseeId: "FR1", energyWh: 210.5, feeCents: 19, sessions: 2, hourly: add(A, B) },
      { franchiseeId: "FR2", energyWh: 5, feeCents: 4, sessions: 2, hourly: C },
    ]);
  });

  it("the aggregates hold each session whole, in its start's hour and day, its curve exactly its hours", async () => {
    const hours = await tp.p.db.query("SELECT session_id, hour_of_day AS h, sum(energy_mwh)::int AS mwh FROM session_usage GROUP BY 1, 2");
    const names = Array.from({ length: 24 }, (_, h) => `mwh_${String(h).padStart(2, "0")}`).join(", ");
    for (const view of ["usage_hourly", "usage_daily"]) {
      const width = view === "usage_hourly" ? 3_600_000 : 86_400_000;
      const rows = await tp.p.db.query(
        `SELECT user_id, terminal_id, vv_ts_to_ms(bucket)::float8 AS bucket, sessions::int, fee_cents::int, energy_mwh::int, ARRAY[${names}]::int[] AS e FROM ${view} ORDER BY 3, 1, 2`,
      );
      // Each crafted session has a user and terminal of its own within its start's bucket.
      expect(rows.rows.map((r) => [r.user_id, r.terminal_id, r.bucket]), view).toEqual(
        sessions
          .map((x) => [x.user, x.terminal, Math.floor(x.start / width) * width] as const)
          .sort((a, b) => a[2] - b[2] || a[0].localeCompare(b[0]) || a[1].localeCompare(b[1])),
      );
      for (const r of rows.rows) {
        const s = sessions.find((x) => x.user === r.user_id && x.terminal === r.terminal_id && Math.floor(x.start / width) * width === r.bucket)!;
        const want = new Array<number>(24).fill(0);
        for (const x of hours.rows.filter((x) => x.session_id === s.id)) want[x.h] = x.mwh;
        expect(r, view).toMatchObject({ sessions: 1, fee_cents: s.feeCents, energy_mwh: s.billedMwh, e: want });
      }
    }
  });

  it("a range that is not whole hours reads the facts at its edges: the same sessions as by start", async () => {
    // From 21:30:00.001 (S-A starts at 21:30:00.000, left out) to 12:00:00.001 (S-C, started at 12:00, in).
    const r = await tp.api("GET", `/v1/admin/reports/usage?groupBy=user&from=${sh("2026-11-20T21:30:00") + 1}&to=${sh("2026-11-21T12:00:00") + 1}`);
    expect(r.body.groups).toEqual([
      { userId: "U1", energyWh: 5, feeCents: 1, sessions: 1, hourly: C },
      { userId: "U2", energyWh: 15, feeCents: 2, sessions: 1, hourly: B },
    ]);
  });

  it("a session rolled again (its facts deleted, its mark cleared) is counted once, exactly", async () => {
    const groupings = ["user", "terminal", "region", "franchisee"];
    const before = await Promise.all(groupings.map((g) => get(`/v1/admin/reports/usage?groupBy=${g}`)));
    await tp.p.db.query("BEGIN; DELETE FROM session_usage WHERE session_id = 'S-A'; UPDATE sessions SET usage_rolled_at = NULL WHERE session_id = 'S-A'; COMMIT");
    await tp.p.control!.rollUsage();
    const after = await Promise.all(groupings.map((g) => get(`/v1/admin/reports/usage?groupBy=${g}`)));
    expect(after.map((r) => r.body)).toEqual(before.map((r) => r.body));
  });

  it("a user sees their own usage; a franchisee only its own terminals", async () => {
    const u2 = await get("/v1/me/usage", await tp.token("U2", "user"));
    expect(u2.body).toMatchObject({ userId: "U2", energyWh: 15, feeCents: 2, sessions: 1, hourly: B });
    const nobody = await get("/v1/me/usage", await tp.token("U9", "user"));
    expect(nobody.body).toMatchObject({ userId: "U9", energyWh: 0, feeCents: 0, sessions: 0, hourly: hourly({}) });
    const fr2 = await get("/v1/franchisee/usage?groupBy=terminal", await tp.token("FR2", "franchisee"));
    expect(fr2.body.groups).toEqual([{ terminalId: "T3", energyWh: 5, feeCents: 4, sessions: 2, hourly: C }]);
    const fr1 = await get("/v1/franchisee/usage?groupBy=region", await tp.token("FR1", "franchisee"));
    expect(fr1.body.groups).toEqual([{ regionId: "R1", energyWh: 210.5, feeCents: 19, sessions: 2, hourly: add(A, B) }]);
  });

  it("refuses bad ranges and groupings, and other roles", async () => {
    const bad = await tp.api("GET", `/v1/admin/reports/usage?groupBy=user&from=${range.to}&to=${range.from}`);
    expect(bad).toMatchObject({ status: 400, body: { error: { code: "invalid_request" } } });
    expect((await tp.api("GET", "/v1/admin/reports/usage?groupBy=planet")).status).toBe(400);
    expect((await tp.api("GET", "/v1/franchisee/usage?groupBy=user", undefined, await tp.token("FR1", "franchisee"))).status).toBe(400);
    expect((await tp.api("GET", "/v1/admin/reports/usage?groupBy=user", undefined, await tp.token("FR1", "franchisee"))).status).toBe(403);
    expect((await tp.api("GET", "/v1/franchisee/usage", undefined, await tp.token("U1", "user"))).status).toBe(403);
  });

  it("a franchisee's package: its terminals' usage, busy share and faults, nothing of another's, as JSON and CSV", async () => {
    const fr1 = await tp.token("FR1", "franchisee");
    const pkg = (await get("/v1/franchisee/package", fr1)).body;
    expect(pkg).toMatchObject({ franchiseeId: "FR1", ...range, pendingSessions: 0 });
    expect(pkg.totals).toEqual({ energyWh: 210.5, feeCents: 19, sessions: 2, hourly: add(A, B) });
    expect(pkg.terminals).toEqual([
      // In sessions 195.5 + 30.5 minutes of the 2880 in the range.
      { terminalId: "T1", regionId: "R1", energyWh: 210.5, feeCents: 19, sessions: 2, hourly: add(A, B), busyShare: 0.0785, faultsOpened: 1 },
    ]);
    expect(pkg.faults.map((f: { faultId: string }) => f.faultId)).toEqual(["F-1"]);
    expect(JSON.stringify(pkg)).not.toMatch(/T3|FR2|F-2|U1|U2/);

    const res = await fetch(`${tp.p.url}/v1/franchisee/package?format=csv&from=${range.from}&to=${range.to}`, { headers: { authorization: `Bearer ${fr1}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/csv/);
    expect(res.headers.get("content-disposition")).toMatch(/attachment; filename="voltvend-FR1-.*\.csv"/);
    const lines = (await res.text()).trimEnd().split("\r\n");
    const hours = Array.from({ length: 24 }, (_, h) => `wh_${String(h).padStart(2, "0")}`);
    expect(lines).toEqual([
      ["terminal_id", "region_id", "sessions", "energy_wh", "fee_cents", "busy_share", "faults_opened", ...hours].join(","),
      ["T1", "R1", 2, 210.5, 19, 0.0785, 1, ...add(A, B)].join(","),
      ["TOTAL", "", 2, 210.5, 19, "", 1, ...add(A, B)].join(","),
    ]);
  });

  it("daily packages go out once per franchisee and day, each on its own subject", async () => {
    const { db, nc, subjects: s } = tp.p;
    // Ten minutes after midnight of 2026-11-22 in Shanghai: the 21st is due.
    const now = sh("2026-11-22T00:20:00");
    const o = { db, nc, subjects: s, now, tz: "Asia/Shanghai", delayMs: 10 * MIN };
    expect(await publishDuePackages(o)).toBe(2);
    expect(await publishDuePackages(o)).toBe(0);
    const msgs = await streamMessages<{ franchiseeId: string; day: string; totals: { energyWh: number }; terminals: { terminalId: string }[] }>(nc, s.streams.packages);
    // (The platform's own round in beforeAll already sent yesterday's (UTC) packages: empty ones.)
    const of21 = msgs.filter((m) => m.data.day === "2026-11-21");
    expect(of21.map((m) => [m.subject, m.data.day, m.data.totals.energyWh, m.data.terminals.map((t) => t.terminalId)])).toEqual([
      // On the 21st: S-B on T1 (FR1), S-C on T3 (FR2); S-A started on the 20th.
      [s.pkg("FR1"), "2026-11-21", 15, ["T1"]],
      [s.pkg("FR2"), "2026-11-21", 5, ["T3"]], // S-C and S-E
    ]);
  });

  it("a city franchisee's daily package goes in parts under the message bound, which join to the whole package", async () => {
    const { db, nc, subjects: s } = tp.p;
    await put(tp, "/v1/admin/franchisees/FR3", { name: "FR3" });
    // 4,000 terminals (the API's checks are not what is tested here): as one message, about 600 KB.
    await db.query(
      `INSERT INTO terminals (terminal_id, qr, gateway_id, region_id, franchisee_id, profile)
       SELECT 'C' || lpad(i::text, 5, '0'), 'qr-C' || i, 'G1', 'R1', 'FR3', (SELECT profile FROM terminals WHERE terminal_id = 'T1')
       FROM generate_series(1, 4000) AS i`,
    );
    // The 22nd is due ten minutes after the next midnight in Shanghai.
    const o = { db, nc, subjects: s, now: sh("2026-11-23T00:20:00"), tz: "Asia/Shanghai", delayMs: 10 * MIN };
    expect(await publishDuePackages(o)).toBe(3);
    const msgs = await streamMessages<{ day: string; part: number; parts: number; franchiseeId: string; pendingSessions: number; terminals: { terminalId: string }[]; faults: unknown[] }>(nc, s.streams.packages);
    const fr3 = msgs.filter((m) => m.subject === s.pkg("FR3") && m.data.day === "2026-11-22");
    expect(fr3.length).toBeGreaterThan(1);
    for (const [i, m] of fr3.entries()) {
      expect(Buffer.byteLength(JSON.stringify(m.data))).toBeLessThanOrEqual(PACKAGE_PART_BYTES);
      expect({ part: m.data.part, parts: m.data.parts, franchiseeId: m.data.franchiseeId }).toEqual({ part: i + 1, parts: fr3.length, franchiseeId: "FR3" });
    }
    const joined = fr3.flatMap((m) => m.data.terminals.map((t) => t.terminalId));
    expect(joined).toEqual(Array.from({ length: 4000 }, (_, i) => `C${String(i + 1).padStart(5, "0")}`));
    // A package that fits is still one message, now marked part 1 of 1.
    const fr1 = msgs.filter((m) => m.subject === s.pkg("FR1") && m.data.day === "2026-11-22");
    expect(fr1.map((m) => [m.data.part, m.data.parts])).toEqual([[1, 1]]);
    // Nothing left in the outbox: every part was published.
    const left = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE subject LIKE $1", [`${s.pkg("")}%`]);
    expect(left.rows[0]!.n).toBe(0);
  });
}

describe("usage reports, plain PostgreSQL", () => suite("plain"));
describe.skipIf(!hasTimescale)("usage reports, TimescaleDB", () => suite("timescaledb"));
