import { connect } from "@nats-io/transport-node";
import { createGateway, type Gateway } from "../cli/index.ts";
import { natsServers } from "../contracts/index.ts";
import { NATS_URL, noteTargetReached, percentile, seedChargingNetwork, startPlatformProcess } from "./harness.ts";

/**
 * Cutoff latency: from the publish of the reading that reaches a session's energy target to the
 * power_off command seen on the wire, with `terminals` terminals each sending one reading per
 * second and about `concurrent` sessions running at once.
 */
export async function benchCutoff(o: { terminals: number; seconds: number; concurrent: number; port: number; split?: string[]; env?: Record<string, string> }) {
  // env: the platform's (a cluster's NATS_URL and STREAM_REPLICAS, bench/cluster.ts).
  const p = await startPlatformProcess("cutoff", o.port, o.env ?? {}, o.split);
  try {
    const users = await seedChargingNetwork(p, { users: 200, amountCents: 1_000_000 });
    let nextUser = 0;

    const nc = await connect({ servers: natsServers(o.env?.NATS_URL ?? NATS_URL), noAsyncTraces: true });
    const perGateway = 50;
    const gateways: Gateway[] = [];
    const ids: string[] = [];
    for (let g = 0; g < Math.ceil(o.terminals / perGateway); g++) {
      const gatewayId = `G${g}`;
      await p.call("PUT", `/v1/admin/gateways/${gatewayId}`, { regionId: "R1" });
      const gw = createGateway({ nc, prefix: p.prefix, gatewayId, tickMs: 1000, onError: () => {} });
      for (let i = 0; i < perGateway && ids.length < o.terminals; i++) {
        const t = `T${g}_${i}`;
        await p.call("PUT", `/v1/admin/terminals/${t}`, { qr: t, gatewayId, regionId: "R1", franchiseeId: "F1" });
        // The cloud's cutoff is what is measured: terminals that do not stop at their own limit.
        gw.addTerminal(t, { limits: false });
        ids.push(t);
      }
      await gw.flush();
      gateways.push(gw);
    }

    // Per terminal: energy at power-on, target, and the wall time the target-reaching reading left.
    const sessions = new Map<string, { sessionId: string; targetWh: number; startWh?: number; reachedAt?: number; cut?: boolean }>();
    const bySession = new Map<string, string>();
    const latencies: number[] = [];
    let late = 0;
    // Where the time goes: the cutoff decision seen on the wire splits each latency in two (the
    // processors' part, reading to cutoff; control's part, cutoff to power_off).
    const decidedSeen = new Map<string, number>();
    const toCutoff: number[] = [];
    const cutoffToCommand: number[] = [];
    const cutSub = nc.subscribe(`${p.prefix}.ctl.cutoff.>`);
    void (async () => {
      for await (const m of cutSub) {
        const id = m.json<{ sessionId: string }>().sessionId;
        if (!decidedSeen.has(id)) decidedSeen.set(id, performance.now());
      }
    })();
    const cmdSub = nc.subscribe(`${p.prefix}.cmd.>`);
    void (async () => {
      for await (const m of cmdSub) {
        const now = performance.now();
        const cmd = m.json<{ type: string; sessionId: string }>();
        if (cmd.type !== "power_off") continue;
        const t = bySession.get(cmd.sessionId);
        const s = t ? sessions.get(t) : undefined;
        if (!s || s.cut) continue;
        s.cut = true;
        if (s.reachedAt !== undefined) latencies.push(now - s.reachedAt);
        else late++;
        const decided = decidedSeen.get(cmd.sessionId);
        if (decided !== undefined && s.reachedAt !== undefined) {
          toCutoff.push(decided - s.reachedAt);
          cutoffToCommand.push(now - decided);
        }
      }
    })();

    // Readings: each gateway ticks once a second, gateways spread evenly across the second.
    const tickers = gateways.map((gw, i) =>
      setTimeout(() => {
        const tick = () => {
          const sent = performance.now();
          for (const r of gw.tick()) noteTargetReached(gw, sessions, r, sent);
        };
        tick();
        (gw as any).__timer = setInterval(tick, 1000);
      }, (1000 / gateways.length) * i),
    );

    // Keep about `concurrent` sessions running, each 2-5 Wh (2-5 readings at 3.7 kW).
    const started = Date.now();
    const statuses: Record<string, number> = {};
    while (Date.now() - started < o.seconds * 1000) {
      const live = [...sessions.entries()].filter(([, s]) => !s.cut);
      const idle = ids.filter((t) => !sessions.has(t) || sessions.get(t)!.cut);
      const need = Math.min(o.concurrent - live.length, 20);
      await Promise.all(
        Array.from({ length: Math.max(0, need) }, async () => {
          const t = idle.splice(Math.floor(Math.random() * idle.length), 1)[0];
          if (!t) return;
          const targetWh = 2 + Math.random() * 3;
          sessions.set(t, { sessionId: "", targetWh, cut: true });
          const user = users[nextUser++ % users.length]!;
          const r = await p.call("POST", "/v1/charge-requests", { qr: t, target: { energyWh: Number(targetWh.toFixed(3)) }, payment: "prepaid" }, user);
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          if (r.status === 201) {
            sessions.set(t, { sessionId: r.body.sessionId, targetWh: Number(targetWh.toFixed(3)) });
            bySession.set(r.body.sessionId, t);
          }
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 8000)); // let running sessions finish
    for (const t of tickers) clearTimeout(t);
    for (const gw of gateways) {
      clearInterval((gw as any).__timer);
      await gw.stop();
    }
    cmdSub.unsubscribe();
    cutSub.unsubscribe();
    await nc.close();
    latencies.sort((a, b) => a - b);
    toCutoff.sort((a, b) => a - b);
    cutoffToCommand.sort((a, b) => a - b);
    const spread = (xs: number[]) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99) });
    return {
      name: "cutoff_latency",
      processes: o.split ?? ["control,cutoff,faults,writer"],
      terminals: ids.length,
      readingsPerSecond: ids.length,
      seconds: o.seconds,
      chargeRequestsByStatus: statuses,
      cutoffsMeasured: latencies.length,
      // power_off for a session whose target-reaching reading the generator did not see leave.
      cutoffsWithoutReading: late,
      ms: { p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN },
      // The same cutoffs split at the cutoff message (absent for those decided on a silence tick).
      split: { readingToCutoffMs: spread(toCutoff), cutoffToPowerOffMs: spread(cutoffToCommand) },
      goal: "p99 < 50 ms",
    };
  } finally {
    await p.stop();
  }
}
