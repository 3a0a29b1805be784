/**
 * What a partition costs (docs/scaling.md, "Partitions and takeover"): one processor instance
 * works off the same readings (singles, and batches of 50) with 1 partition and with 4 partitions
 * all held by it (each partition's consumer reads the whole stream and skips the other gateways by
 * subject), and with 4 partitions of which it holds 1 of 4 instances' share. CPU and wall time to
 * step them all. Run: `npx tsx bench/partitions.ts` (NATS on NATS_URL, default 127.0.0.1:4222).
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { Registry } from "prom-client";
import { subjects as makeSubjects } from "../contracts/index.ts";
import { ensureTopology } from "../ingest/index.ts";
import { cutoffStage, faultStage, startPartitionedProcessors, defaultFaultProfile } from "../processors/index.ts";

const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const GATEWAYS = 40;
const PER_GATEWAY = 50;
const ROUNDS = Number(process.env.PARTITION_ROUNDS ?? 20);

async function run(mode: "singles" | "batches", count: number, held: "all" | "quarter") {
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const prefix = `bp${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
  const s = makeSubjects(prefix);
  const buckets = await ensureTopology(nc, s, { maxBytes: 64 * 2 ** 20, telemetryMaxAgeDays: 1 });
  const js = jetstream(nc);
  const log = pino({ level: "warn" });
  for (let g = 0; g < GATEWAYS; g++)
    for (let t = 0; t < PER_GATEWAY; t++)
      await buckets.terminals.put(`T${g}_${t}`, JSON.stringify({ terminalId: `T${g}_${t}`, gatewayId: `G${g}`, franchiseeId: "F", regionId: "R", profile: defaultFaultProfile }));
  // The readings first, then the processors work them off: the cost of stepping, not of waiting.
  const now = Date.now();
  let total = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const pubs: Promise<unknown>[] = [];
    for (let g = 0; g < GATEWAYS; g++) {
      const readings = Array.from({ length: PER_GATEWAY }, (_, t) => ({ terminalId: `T${g}_${t}`, ts: now + r * 1000, seq: r, state: "off", currentA: 0, voltageV: 230, energyWh: 1000 }));
      if (mode === "batches") pubs.push(js.publish(s.telBatch(`G${g}`), JSON.stringify({ readings })));
      else for (const { terminalId, ...rd } of readings) pubs.push(js.publish(s.tel(`G${g}`, terminalId), JSON.stringify(rd)));
      total += readings.length;
    }
    await Promise.all(pubs);
  }
  const common = { nc, subjects: s, buckets, log, registry: new Registry(), clock: Date.now };
  // "quarter": three other members already hold three partitions, so this instance gets one.
  if (held === "quarter") for (let k = 1; k < count; k++) await buckets.leases.put(`partition.${k}`, JSON.stringify({ owner: `other${k}` }));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const procs = await startPartitionedProcessors({
    nc,
    subjects: s,
    log,
    clock: Date.now,
    durable: s.consumer("processors"),
    leases: buckets.leases,
    count,
    leaseMs: held === "quarter" ? 600_000 : 5000,
    terminals: buckets.terminals,
    registry: common.registry,
    maxBatch: 2000,
    stages: [(ctx) => cutoffStage({ ...common, silenceMs: 30_000 }, ctx), (ctx) => faultStage({ ...common, offlineMs: 60_000 }, ctx)],
  });
  const jsm = await jetstreamManager(nc);
  const mine = held === "all" ? [...Array(count).keys()] : [0];
  for (;;) {
    let left = 0;
    for (const k of mine) {
      const durable = count === 1 ? s.consumer("processors") : `${s.consumer("processors")}_p${k}`;
      const ci = await jsm.consumers.info(s.streams.telemetry, durable).catch(() => null);
      left += ci ? ci.num_pending + ci.num_ack_pending : 1;
    }
    if (left === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await procs.stop();
  for await (const si of jsm.streams.list()) if (si.config.name.startsWith(`${prefix}_`) || si.config.name.startsWith(`KV_${prefix}_`)) await jsm.streams.delete(si.config.name);
  await nc.close();
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return { mode, partitions: count, held: held === "all" ? count : 1, readings: total, wallMs: Math.round(ms), cpuMs: Math.round(cpuMs), cpuUsPerReading: +((cpuMs * 1000) / total).toFixed(1) };
}

const out = [];
for (const mode of ["batches", "singles"] as const) {
  out.push(await run(mode, 1, "all"));
  out.push(await run(mode, 4, "all"));
  out.push(await run(mode, 4, "quarter"));
}
console.table(out);
