import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { configSchema, natsServers, subjects } from "../contracts/index.ts";
import { partitionOf } from "../processors/index.ts";
import { createGateway, type Gateway } from "../cli/index.ts";
import { natsCluster, natsServer, type TestNatsCluster } from "../test/index.ts";
import { benchCutoff } from "./cutoff.ts";
import { benchPlatformIngest } from "./ingest.ts";
import { benchScalePoint } from "./scale.ts";
import { noteTargetReached, percentile, rssMiB, seedChargingNetwork, startPlatformProcess } from "./harness.ts";

/**
 * `npm run bench -- cluster` (issue 12): the platform on three nats-servers clustered on this
 * machine with every stream and bucket at three replicas, beside the same platform on one private
 * nats-server, in the same run: durable readings/s (singles, batches of 50), cutoff latency at 1,000
 * readings/s, resident memory of each part with 100,000 registered terminals and 10,000 live
 * sessions, and the failover time of a processor instance. Both runs use private servers (not the
 * shared one), with the same settings but the replicas.
 */

/** `uptime`'s load averages now: the machine is shared, and the figures mean little without them. */
const load = () => ({ at: new Date().toISOString(), loadavg: loadavg().map((x) => Number(x.toFixed(2))), uptime: execFileSync("uptime", { encoding: "utf8" }).trim() });

/** Resident memory of each nats-server of the cluster, from its monitoring port (`/varz` mem). */
async function natsRssMiB(c: TestNatsCluster): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [i, u] of c.monitorUrls.entries()) {
    try {
      const v = (await (await fetch(`${u}/varz`)).json()) as { mem?: number };
      out[c.names[i]!] = Math.round((v.mem ?? NaN) / 2 ** 20);
    } catch {
      out[c.names[i]!] = NaN;
    }
  }
  return out;
}

export interface ClusterBenchOptions {
  quick: boolean;
  /** Which measures (ingest, cutoff, memory, failover); all by default. */
  only?: string[];
  /** Called with the figures so far, after each measure (a long run leaves something behind). */
  onPartial?: (partial: object) => void;
}

export async function benchCluster(o: ClusterBenchOptions) {
  const want = (m: string) => !o.only?.length || o.only.includes(m);
  const out: Record<string, unknown> = {
    name: "cluster",
    layout: "three nats-servers clustered on loopback (one machine, 2 cores shared with other work) at STREAM_REPLICAS=3, beside one nats-server at replicas 1; private servers both",
    loadBefore: load(),
  };
  const part = (k: string, v: unknown) => {
    out[k] = v;
    o.onPartial?.(out);
  };
  const cluster = await natsCluster({ jetstream: "max_memory_store: 256MB" });
  const single = await natsServer({ jetstream: "max_memory_store: 256MB" });
  const R3 = { NATS_URL: cluster.url, STREAM_REPLICAS: "3" };
  const R1 = { NATS_URL: single.url, STREAM_REPLICAS: "1" };
  const latencySplit = ["control", "cutoff,faults", "writer"];
  try {
    if (want("ingest")) {
      // Published with core NATS as fast as it goes, timed until the last reading is committed in
      // PostgreSQL: durable in both senses (the stream and the database).
      const total = o.quick ? 20_000 : 100_000;
      const split = ["control,cutoff,faults", "writer"];
      const one = { ...(await benchPlatformIngest({ port: 18_191, natsUrl: single.url, total, withVisibility: false, split, env: R1 })), load: load() };
      const three = { ...(await benchPlatformIngest({ port: 18_192, natsUrl: cluster.url, total, withVisibility: false, split, env: R3 })), load: load() };
      part("ingest", {
        readingsPerRun: total,
        processes: split,
        singleServer: one,
        clusterR3: three,
        ratio: { singles: three.singlesPerSecond / one.singlesPerSecond, batch50: three.batch50PerSecond / one.batch50PerSecond },
        goal: "replicated ingest ≥ 0.5 × single-server",
      });
    }
    if (want("cutoff")) {
      const seconds = o.quick ? 15 : 60;
      const one = { ...(await benchCutoff({ terminals: 1000, seconds, concurrent: 200, port: 18_193, split: latencySplit, env: R1 })), load: load() };
      const three = { ...(await benchCutoff({ terminals: 1000, seconds, concurrent: 200, port: 18_194, split: latencySplit, env: R3 })), load: load() };
      part("cutoff", { readingsPerSecond: 1000, singleServer: one, clusterR3: three, goal: "p99 < 100 ms with replicas 3" });
    }
    if (want("memory")) {
      // 10,000 terminals reporting once a second, each in a session (targets far beyond the run, so
      // none ends), and 90,000 more registered that never report: every part's resident memory.
      const terminals = o.quick ? 1000 : 10_000;
      const r = await benchScalePoint({
        terminals,
        concurrent: terminals,
        // Sessions start at 20-50 a second on this loaded machine: long enough to reach most of 10,000.
        seconds: o.quick ? 30 : 240,
        targetWh: [50_000, 60_000],
        // Gateways of 50 terminals sending one batch a second, as in the scale curve: the figure
        // is what the parts hold, and 10,000 single messages a second at replicas 3 overloaded
        // this 2-core machine before any memory could be read (docs/scaling.md).
        batch: true,
        silentRegistered: o.quick ? 9000 : 90_000,
        port: 18_195,
        split: latencySplit,
        env: R3,
      });
      part("memory", {
        registered: terminals + (o.quick ? 9000 : 90_000),
        reporting: terminals,
        liveSessionsAtEnd: r.liveSessionsAtEnd,
        chargeRequestsByStatus: r.chargeRequestsByStatus,
        rssMiB: r.rssMiB,
        withSilentRegistered: r.memoryWithSilent,
        natsServersMiB: await natsRssMiB(cluster),
        cutoffMs: r.cutoffMs,
        cpu: r.cpu,
        pending: { ...r.pending, samples: undefined },
        load: load(),
        goal: "every part < 1024 MiB",
      });
    }
    if (want("failover")) part("failover", await benchFailover({ env: R3, quick: o.quick }));
  } finally {
    await cluster.stop();
    await single.stop();
  }
  out.loadAfter = load();
  return out;
}

/**
 * Failover of a processor instance, on the cluster: two processor instances share the terminals'
 * partitions; one is killed -9 while sessions run. Measured from the kill, for the partitions the
 * victim held (read from the leases bucket just before): when the survivor holds all of them again
 * (`takeoverMs`), and the cutoffs decided after the kill for terminals in them (the first one's
 * time from the kill, and their latencies from the reading that reached the target). A cutoff
 * latency past 1 s elsewhere is the machine's load, not the failover: the split shows which is which.
 */
const PARTITIONS = 8;

export async function benchFailover(o: { env: Record<string, string>; quick: boolean; port?: number }) {
  const shape = configSchema.shape as Record<string, unknown>;
  if (!("PROCESSOR_PARTITIONS" in shape) || !("PROCESSOR_LEASE_S" in shape))
    return { failoverMs: null, reason: "not measured: this build has no partitioned processors with takeover (PROCESSOR_PARTITIONS, PROCESSOR_LEASE_S; issue 12's h12-partitions branch)" };
  const leaseS = 5;
  const split = ["control", "cutoff,faults", "cutoff,faults", "writer"];
  const p = await startPlatformProcess("failover", o.port ?? 18_196, { ...o.env, PROCESSOR_PARTITIONS: String(PARTITIONS), PROCESSOR_LEASE_S: String(leaseS) }, split);
  const nc = await connect({ servers: natsServers(o.env.NATS_URL!), noAsyncTraces: true, maxReconnectAttempts: -1 });
  const gateways: Gateway[] = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    const users = await seedChargingNetwork(p, { users: 50, amountCents: 1_000_000 });
    // Partitions are by gateway: 16 gateways of 10 terminals spread over both instances.
    const ids: string[] = [];
    for (let g = 0; g < 16; g++) {
      const gatewayId = `G${g}`;
      await p.call("PUT", `/v1/admin/gateways/${gatewayId}`, { regionId: "R1" });
      const gw = createGateway({ nc, prefix: p.prefix, gatewayId, tickMs: 1000, onError: () => {} });
      for (let i = 0; i < 10; i++) {
        const t = `T${g}_${i}`;
        await p.call("PUT", `/v1/admin/terminals/${t}`, { qr: t, gatewayId, regionId: "R1", franchiseeId: "F1" });
        gw.addTerminal(t, { limits: false });
        ids.push(t);
      }
      await gw.flush();
      gateways.push(gw);
    }
    const sessions = new Map<string, { sessionId: string; targetWh: number; reachedAt?: number; cut?: boolean }>();
    const bySession = new Map<string, string>();
    const decisions: { at: number; terminalId: string; latency: number | null }[] = [];
    const sub = nc.subscribe(`${p.prefix}.ctl.cutoff.*`, {
      callback: (_e, m) => {
        const at = performance.now();
        const c = m.json<{ sessionId: string; reason: string }>();
        const t = bySession.get(c.sessionId);
        const s = t ? sessions.get(t) : undefined;
        if (!s || s.cut) return;
        s.cut = true;
        decisions.push({ at, terminalId: t!, latency: s.reachedAt !== undefined ? at - s.reachedAt : null });
      },
    });
    gateways.forEach((gw, i) =>
      timers.push(
        setTimeout(() => {
          const tick = () => {
            const sent = performance.now();
            for (const r of gw.tick()) noteTargetReached(gw, sessions, r, sent);
          };
          tick();
          timers.push(setInterval(tick, 1000));
        }, (1000 / gateways.length) * i),
      ),
    );
    let nextUser = 0;
    const keepCharging = async (untilMs: number) => {
      while (performance.now() < untilMs) {
        const idle = ids.filter((t) => !sessions.has(t) || sessions.get(t)!.cut);
        const live = ids.length - idle.length;
        await Promise.all(
          Array.from({ length: Math.max(0, Math.min(120 - live, 20)) }, async () => {
            const t = idle.splice(Math.floor(Math.random() * idle.length), 1)[0];
            if (!t) return;
            const targetWh = Number((2 + Math.random() * 3).toFixed(3));
            sessions.set(t, { sessionId: "", targetWh, cut: true });
            const r = await p.call("POST", "/v1/charge-requests", { qr: t, target: { energyWh: targetWh }, payment: "prepaid" }, users[nextUser++ % users.length]);
            if (r.status === 201) {
              sessions.set(t, { sessionId: r.body.sessionId, targetWh });
              bySession.set(r.body.sessionId, t);
            }
          }),
        );
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    // Warm up with both instances, then kill -9 one and keep the sessions coming.
    await keepCharging(performance.now() + (o.quick ? 15_000 : 30_000));
    const victim = p.processes()[1]!;
    const leases = await new Kvm(nc).open(subjects(p.prefix).buckets.leases);
    const owners = async () => {
      const m = new Map<number, string>();
      for (let k = 0; k < PARTITIONS; k++) {
        const e = await leases.get(`partition.${k}`).catch(() => null);
        const owner = e && e.operation === "PUT" && e.value.length > 0 ? (e.json<{ owner?: string }>().owner ?? "") : "";
        m.set(k, owner);
      }
      return m;
    };
    // Instance ids are host-pid-random (processors/partitioned.ts).
    const isVictim = (owner: string) => owner.split("-").at(-2) === String(victim.pid);
    const victimPartitions = [...(await owners()).entries()].filter(([, owner]) => isVictim(owner)).map(([k]) => k);
    const killedAt = performance.now();
    process.kill(victim.pid!, "SIGKILL");
    let takeoverMs: number | null = null;
    const watchLeases = (async () => {
      while (takeoverMs === null && performance.now() - killedAt < 60_000) {
        const now = await owners();
        if (victimPartitions.every((k) => { const w = now.get(k) ?? ""; return w !== "" && !isVictim(w); })) takeoverMs = performance.now() - killedAt;
        else await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await keepCharging(performance.now() + Math.max(30_000, leaseS * 4000));
    await watchLeases;
    await new Promise((r) => setTimeout(r, 8000));
    sub.unsubscribe();
    // Partitions are by gateway: terminal T<g>_<i> is on gateway G<g>.
    const inVictim = (d: { terminalId: string }) => victimPartitions.includes(partitionOf(`G${d.terminalId.slice(1).split("_")[0]}`, PARTITIONS));
    const before = decisions.filter((d) => d.at < killedAt);
    const after = decisions.filter((d) => d.at >= killedAt);
    const taken = after.filter(inVictim);
    const others = after.filter((d) => !inVictim(d));
    const latencies = (xs: typeof after) => xs.map((d) => d.latency ?? 0).sort((a, b) => a - b);
    return {
      processes: split,
      partitions: PARTITIONS,
      leaseS,
      killed: victim.parts,
      victimPartitions,
      cutoffsBefore: before.length,
      cutoffsAfter: after.length,
      takeoverMs,
      // The victim's partitions after the kill: the first cutoff decided there, and their latencies.
      firstCutoffInVictimPartitionsMs: taken.length > 0 ? taken[0]!.at - killedAt : null,
      victimPartitionsCutoffMs: { n: taken.length, p50: percentile(latencies(taken), 50), max: latencies(taken).at(-1) ?? null },
      // The survivor's own partitions over the same time, for the machine's share.
      otherPartitionsCutoffMs: { n: others.length, p50: percentile(latencies(others), 50), max: latencies(others).at(-1) ?? null },
      survivorRssMiB: rssMiB(p.processes()[2]!.pid),
      goal: "failover < 10 s",
      load: load(),
    };
  } finally {
    for (const t of timers) clearTimeout(t);
    for (const gw of gateways) await gw.stop().catch(() => {});
    await nc.close().catch(() => {});
    await p.stop();
  }
}
