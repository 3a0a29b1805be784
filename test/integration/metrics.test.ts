import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDatabase } from "../helpers/database.ts";
import { NATS_URL, testPrefix } from "../helpers/env.ts";
import { platformProcess } from "../helpers/platform-process.ts";
import { removeNatsState, SECRET, seedFleet, simGateway, testPlatform, until, type TestPlatform, terminalsSeen } from "../helpers/platform.ts";

/** One sample's value from Prometheus text, by its name and labels as written (`name{a="b"}`). */
const sample = (text: string, series: string): number | null => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
};

let tp: TestPlatform;
let gw: Awaited<ReturnType<typeof simGateway>>;

beforeAll(async () => {
  tp = await testPlatform({ TERMINAL_OFFLINE_S: "5" });
  await seedFleet(tp, { terminals: ["T1", "LEAK"], profile: { faultDebounceS: 1, faultClearS: 1 } });
  gw = await simGateway(tp, { T1: {}, LEAK: {} }, { tickMs: 100 });
  await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 1000, reference: "r1" });
  await terminalsSeen(tp, gw);
});

afterAll(async () => {
  await gw?.stop();
  await tp?.[Symbol.asyncDispose]();
});

const scrape = async (url: string) => {
  const r = await fetch(`${url}/metrics`);
  expect(r.status).toBe(200);
  return r.text();
};

describe("what operators page on", () => {
  it("the control service's /metrics has the process metrics, pool, streams, consumer lag, backlogs", async () => {
    const text = await scrape(tp.p.url);
    for (const name of ["process_cpu_user_seconds_total", "process_resident_memory_bytes", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes"])
      expect(text).toContain(`# TYPE ${name} `);
    expect(sample(text, "vend_db_pool_waiting")).toBe(0);
    expect(sample(text, "vend_db_pool_connections")).toBeGreaterThan(0);
    expect(sample(text, "vend_outbox_backlog")).toEqual(expect.any(Number));
    expect(sample(text, "vend_webhook_backlog")).toBe(0);
    const tel = `${tp.prefix}_TELEMETRY`;
    expect(sample(text, `vend_stream_max_bytes{stream="${tel}"}`)).toBe(64 * 2 ** 20);
    expect(sample(text, `vend_stream_messages{stream="${tel}"}`)).toBeGreaterThan(0);
    // Each durable of the telemetry stream (the writer's, the processors') has its lag.
    const lags = text.split("\n").filter((l) => l.startsWith(`vend_consumer_pending{stream="${tel}",consumer=`));
    expect(lags.length).toBeGreaterThanOrEqual(2);
    for (const l of lags) expect(Number(l.split(" ")[1])).toBeGreaterThanOrEqual(0);
    expect(text).toContain("# TYPE vend_webhook_failures_total counter");
  });

  it("a cutoff and a fault observe their decision latency from the reading's storage", async () => {
    const user = await tp.token("U1", "user");
    const created = await until(async () => {
      const r = await tp.api("POST", "/v1/charge-requests", { qr: "qr-T1", target: { energyWh: 2 }, payment: "prepaid" }, user);
      return r.status === 201 ? r.body : null;
    });
    await until(async () => (await tp.api("GET", `/v1/sessions/${created.sessionId}`, undefined, user)).body.state === "completed");
    gw.terminals.get("LEAK")!.set({ leakA: 0.5 });
    const text = await until(async () => {
      const t = await scrape(tp.p.url);
      return (sample(t, 'vend_fault_decision_seconds_count{change="open"}') ?? 0) > 0 ? t : null;
    });
    expect(sample(text, "vend_cutoff_decision_seconds_count")).toBe(1);
    // Decided within the second it was stored (in practice milliseconds): +Inf holds it, and the 2.5 s bucket too.
    expect(sample(text, 'vend_cutoff_decision_seconds_bucket{le="2.5"}')).toBe(1);
    expect(sample(text, 'vend_fault_decision_seconds_bucket{le="2.5",change="open"}')).toBeGreaterThanOrEqual(1);
    gw.terminals.get("LEAK")!.set({ leakA: 0 });
  });

  it("a process started with --parts writer serves /metrics, /healthz and /readyz on its own port", async () => {
    await using db = await testDatabase();
    const prefix = testPrefix();
    try {
      await using proc = await platformProcess(
        { NATS_URL, DATABASE_URL: db.url, VEND_PREFIX: prefix, VEND_JWT_SECRET: SECRET, LOG_LEVEL: "warn", STREAM_MAX_BYTES: String(64 * 2 ** 20) },
        { parts: "writer" },
      );
      expect((await fetch(`${proc.url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${proc.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ ok: true, checks: { database: "ok", nats: "ok" } });
      const text = await scrape(proc.url);
      expect(text).toContain("# TYPE process_cpu_user_seconds_total counter");
      expect(text).toContain("# TYPE vend_readings_stored_total counter");
      expect(text).toContain("# TYPE vend_db_pool_waiting gauge");
      expect(text).toMatch(new RegExp(`vend_consumer_pending\\{stream="${prefix}_TELEMETRY",consumer="[^"]+"\\} \\d+`));
      // No HTTP API on it: only the ops routes.
      expect((await fetch(`${proc.url}/v1/me`)).status).toBe(404);
      // Background parts only: it lowered its own priority (BACKGROUND_NICE, 10 unless set), so
      // the processors and control on the same host come first (field 19 of /proc/<pid>/stat).
      const nice = Number(readFileSync(`/proc/${proc.child.pid}/stat`, "utf8").split(") ")[1]!.split(" ")[16]);
      expect(nice).toBeGreaterThanOrEqual(10);
    } finally {
      await removeNatsState(prefix);
    }
  }, 90_000);
});
