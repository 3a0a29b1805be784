import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { maintainStorage, storageEngine } from "../../ingest/index.ts";
import { timescaleAvailable } from "../helpers/database.ts";
import { NATS_URL } from "../helpers/env.ts";
import { seedFleet, steppedUpTo, testPlatform, until, type TestPlatform } from "../helpers/platform.ts";
import { policyJob, policyRuns } from "../helpers/timescale.ts";

const DAY = 86_400_000;
const hasTimescale = await timescaleAvailable("the TimescaleDB storage tests");

const reading = (ts: number, i: number) => ({ ts, seq: i, state: "on", currentA: 16.5, voltageV: 220, energyWh: 100 + i });

/** The same behaviour, whichever storage path: what the API and everything above the schema see. */
function storageSuite(engine: "plain" | "timescaledb") {
  let tp: TestPlatform;
  let nc: NatsConnection;
  beforeAll(async () => {
    tp = await testPlatform({ VEND_STORAGE: engine, READINGS_RETENTION_DAYS: "30" }, { parts: { cutoff: false } });
    await seedFleet(tp, { terminals: ["T1"] });
    nc = await connect({ servers: NATS_URL });
  });
  afterAll(async () => {
    await nc?.close();
    await tp?.[Symbol.asyncDispose]();
  });

  it(`runs on the ${engine} path`, async () => {
    expect(await storageEngine(tp.p.db)).toBe(engine);
  });

  it("stores readings once and serves them, also after old data is compressed or moved", async () => {
    const now = Date.now();
    const times = [now - 3 * DAY, now - 3 * DAY + 1000, now - 60_000, now - 59_000];
    times.forEach((ts, i) => nc.publish(`${tp.prefix}.tel.G1.T1`, JSON.stringify(reading(ts, i))));
    await until(async () => (await tp.api("GET", "/v1/admin/terminals/T1/readings")).body.readings.length === 4);
    if (engine === "timescaledb") {
      // The compression policy (READINGS_COMPRESS_AFTER_DAYS, 2) runs as TimescaleDB's background
      // job, here every second instead of twice a day: the 3-day-old chunk ends compressed.
      const oldChunk = async () => {
        const c = await tp.p.db.query<{ compressed: boolean }>(
          "SELECT is_compressed AS compressed FROM timescaledb_information.chunks WHERE hypertable_name = 'readings' AND range_end < now() - interval '2 days'",
        );
        return c.rows.length === 1 && c.rows[0]!.compressed;
      };
      const run = await policyRuns(tp.p.db, await policyJob(tp.p.db, "policy_compression", "readings"), oldChunk);
      expect(run.successes).toBeGreaterThan(0);
    }
    // Repeats of the old, possibly compressed readings are still counted once.
    times.forEach((ts, i) => nc.publish(`${tp.prefix}.tel.G1.T1`, JSON.stringify(reading(ts, i))));
    nc.publish(`${tp.prefix}.tel.G1.T1`, JSON.stringify(reading(now - 1000, 9)));
    // The writer has handled the last one, and so the repeats sent before it: one stored twice would show now.
    await steppedUpTo(tp, tp.p.subjects.consumer("writer"), `${tp.prefix}.tel.G1.T1`, (d) => d.seq === 9);
    const got = (await tp.api("GET", "/v1/admin/terminals/T1/readings")).body.readings;
    expect(got.map((r: { ts: number }) => r.ts)).toEqual([...times, now - 1000]);
  });

  it("drops readings past retention and keeps the rest", async () => {
    const old = Date.now() - 40 * DAY;
    nc.publish(`${tp.prefix}.tel.G1.T1`, JSON.stringify(reading(old, 0)));
    // Handled by the writer: stored (on TimescaleDB, the retention job last ran at the writer's start).
    const jsm = await jetstreamManager(nc);
    await until(async () => {
      const c = await jsm.consumers.info(tp.p.subjects.streams.telemetry, tp.p.subjects.consumer("writer"));
      return c.num_pending === 0 && c.num_ack_pending === 0;
    });
    expect((await tp.p.db.query("SELECT count(*)::int AS n FROM readings WHERE ts < now() - interval '35 days'")).rows[0].n).toBe(1);
    if (engine === "timescaledb") {
      await maintainStorage(tp.p.db, { retentionDays: 30, compressAfterDays: 2 }, Date.now());
      const jobs = await tp.p.db.query(
        "SELECT proc_name, config FROM timescaledb_information.jobs WHERE hypertable_name = 'readings' ORDER BY proc_name",
      );
      expect(jobs.rows.map((j) => [j.proc_name, j.config.drop_after ?? j.config.compress_after])).toEqual([
        ["policy_compression", "2 days"],
        ["policy_retention", "30 days"],
      ]);
      // The retention policy runs as TimescaleDB's background job (here every second instead of
      // daily) and drops the 40-day-old reading's chunk; the job's very first run, at the
      // writer's start, came before that chunk existed.
      const oldChunks = async () =>
        (await tp.p.db.query("SELECT count(*)::int AS n FROM timescaledb_information.chunks WHERE hypertable_name = 'readings' AND range_end < now() - interval '30 days'"))
          .rows[0].n as number;
      const run = await policyRuns(tp.p.db, await policyJob(tp.p.db, "policy_retention", "readings"), async () => (await oldChunks()) === 0);
      expect(run.successes).toBeGreaterThan(0);
    } else {
      const m = await maintainStorage(tp.p.db, { retentionDays: 30, compressAfterDays: 2 }, Date.now());
      expect(m.engine).toBe("plain");
      const parts = await tp.p.db.query(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass ORDER BY 1",
      );
      const names = parts.rows.map((r) => r.relname as string);
      // Days made ahead: today and three more.
      for (let d = 0; d <= 3; d++) expect(names).toContain(`readings_p${new Date(Date.now() + d * DAY).toISOString().slice(0, 10).replace(/-/g, "")}`);
      expect(names).toContain("readings_default");
    }
    const left = await tp.p.db.query("SELECT count(*)::int AS n FROM readings WHERE ts < now() - interval '35 days'");
    expect(left.rows[0].n).toBe(0);
    expect((await tp.api("GET", "/v1/admin/terminals/T1/readings")).body.readings.length).toBe(5);
  });
}

describe("plain PostgreSQL storage (day partitions)", () => storageSuite("plain"));
describe.skipIf(!hasTimescale)("TimescaleDB storage (hypertable, compression, retention)", () => storageSuite("timescaledb"));
