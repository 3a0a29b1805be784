import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import pg from "pg";
import { createGateway, type Gateway } from "../cli/index.ts";
import { natsServers } from "../contracts/index.ts";
import { NATS_URL, PG_BASE, cpuMs, runQueueWaitMs, noteTargetReached, percentile, rssMiB, seedChargingNetwork, startPlatformProcess } from "./harness.ts";

export interface ScalePoint {
  terminals: number;
  /** Sessions kept running at once. */
  concurrent: number;
  seconds: number;
  /** Energy targets of the sessions (Wh; the simulated terminals draw about 1 Wh/s). */
  targetWh: [number, number];
  /** Registered terminals that never report, added after the latency window (the memory figure). */
  silentRegistered?: number;
  /**
   * true: each gateway sends its 50 terminals' readings as one `telb` message a second (a gateway
   * reading its RS-485 bus of meters); false: one `tel` message per reading (10,000 a second at
   * 10,000 terminals: each terminal on a connection of its own). @default false
   */
  batch?: boolean;
}

const ms = (xs: number[]) => {
  xs.sort((a, b) => a - b);
  return { n: xs.length, p50: percentile(xs, 50), p90: percentile(xs, 90), p99: percentile(xs, 99), max: xs.at(-1) ?? NaN };
};

/**
 * One point of the scale curve (docs/scaling.md), in the shipped process layout: `terminals`
 * simulated terminals each sending one reading a second, about `concurrent` sessions running, and
 * meanwhile terminals without a session starting to leak (two a second). Measured: the cutoff
 * latency (publish of the target-reaching reading to power_off on the wire), the fault detection
 * latency (publish of the reading that completes the leak's debounce to the franchisee's fault
 * event, and to the processor's decision), the processors' and the writer's consumer pending every
 * 5 s (bounded, or a lag that grows), and every process's resident memory.
 */
export async function benchScalePoint(o: ScalePoint & { port: number; split: string[]; env?: Record<string, string> }) {
  // The machine's load average (1, 5, 15 min) as the point starts: the figures are only as good as the machine was quiet.
  const loadAtStart = loadavg().map((x) => Number(x.toFixed(2)));
  // env: the platform's (a cluster's NATS_URL and STREAM_REPLICAS, bench/cluster.ts).
  const p = await startPlatformProcess("scale", o.port, o.env ?? {}, o.split);
  const natsUrl = natsServers(o.env?.NATS_URL ?? NATS_URL);
  // The gateways on one connection, what the benchmark watches on another: a starved load
  // generator's watching connection cut as a slow consumer must not take the gateways with it.
  const nc = await connect({ servers: natsUrl, noAsyncTraces: true, maxReconnectAttempts: -1 });
  const watch = await connect({ servers: natsUrl, noAsyncTraces: true, maxReconnectAttempts: -1 });
  // Said at once, with the reason, rather than found out from the gateways' failed ticks.
  for (const [name, c] of [["gateways'", nc], ["watching", watch]] as const)
    void c.closed().then((err) => err && console.error(`scale: the ${name} connection closed:`, err));
  // A point that fails stops its gateways before their connection is closed (their failed ticks
  // are not the error).
  let stopTicks = () => {};
  try {
    const users = await seedChargingNetwork(p, { users: Math.max(200, o.concurrent), amountCents: 10_000_000 });
    let nextUser = 0;

    const perGateway = 50;
    const gateways: Gateway[] = [];
    const ids: string[] = [];
    const nGateways = Math.ceil(o.terminals / perGateway);
    for (let g = 0; g < nGateways; g++) {
      const gw = createGateway({ nc, prefix: p.prefix, gatewayId: `G${g}`, tickMs: 1000, batch: o.batch ?? false, onError: () => {} });
      for (let i = 0; i < perGateway && ids.length < o.terminals; i++) {
        gw.addTerminal(`T${g}_${i}`, { limits: false });
        ids.push(`T${g}_${i}`);
      }
      gateways.push(gw);
    }
    // Registered through the admin API, four gateways (200 terminals) at a time.
    for (let g = 0; g < nGateways; g += 4)
      await Promise.all(
        gateways.slice(g, g + 4).map(async (gw) => {
          await p.call("PUT", `/v1/admin/gateways/${gw.gatewayId}`, { regionId: "R1" });
          await Promise.all([...gw.terminals.keys()].map((t) => p.call("PUT", `/v1/admin/terminals/${t}`, { qr: t, gatewayId: gw.gatewayId, regionId: "R1", franchiseeId: "F1" })));
          await gw.flush();
        }),
      );
    const memoryBeforeSilent: Record<string, number> = {};
    for (const proc of p.processes()) memoryBeforeSilent[proc.parts] = rssMiB(proc.pid);

    // The memory figure: this many more registered terminals that never report, as the control
    // service registers them (the table and the registry bucket), before the load starts: the
    // latency is then measured with all of them registered, as in the city.
    if (o.silentRegistered) {
      const c = new pg.Client({ connectionString: `${PG_BASE}/${p.db}` });
      await c.connect();
      await c.query(
        `INSERT INTO terminals (terminal_id, qr, gateway_id, region_id, franchisee_id, profile)
         SELECT 'S' || i, 'S' || i, 'G0', 'R1', 'F1', (SELECT profile FROM terminals LIMIT 1) FROM generate_series(1, $1::int) i`,
        [o.silentRegistered],
      );
      await c.end();
      // On a connection of its own, each put tried again on a timeout: a put that timed out on the
      // loaded gateways' connection ended earlier runs (the error closed the load generator).
      const reg = await connect({ servers: natsUrl, noAsyncTraces: true });
      try {
        const bucket = await new Kvm(reg).open(`${p.prefix}_terminals`);
        const model = (await bucket.get(ids[0]!))!.json<Record<string, unknown>>();
        const put = async (id: string) => {
          for (let tries = 1; ; tries++) {
            try {
              return await bucket.put(id, JSON.stringify({ ...model, terminalId: id, gatewayId: "G0" }));
            } catch (e) {
              if (tries >= 10) throw e;
              await new Promise((r) => setTimeout(r, 500 * tries));
            }
          }
        };
        for (let i = 1; i <= o.silentRegistered; i += 500)
          await Promise.all(Array.from({ length: Math.min(500, o.silentRegistered - i + 1) }, (_, j) => put(`S${i + j}`)));
      } finally {
        await reg.close().catch(() => {});
      }
      // The processors' registry watch takes them in.
      await new Promise((r) => setTimeout(r, 10_000));
    }
    const memoryAfterSilent: Record<string, number> = {};
    for (const proc of p.processes()) memoryAfterSilent[proc.parts] = rssMiB(proc.pid);
    // The load generator's own event loop: a starved one publishes late and answers commands late,
    // and the latencies measured then include its delay.
    const lag = monitorEventLoopDelay({ resolution: 20 });
    console.log(`scale: ${ids.length} terminals registered on ${gateways.length} gateways; load average ${loadavg()[0]!.toFixed(1)}`);
    const sessions = new Map<string, { sessionId: string; targetWh: number; reachedAt?: number; cut?: boolean }>();
    const bySession = new Map<string, string>();
    const cutLatencies: number[] = [];
    // Measured after a warm-up (JIT, the consumers' first pulls, the first sessions' starts).
    let measuring = false;
    const warmupMs = 10_000;
    // When each session's arm reached the arms bucket (the control service writes it on the
    // terminal's power_on_ack): a session that reached its target before it was armed can only be
    // cut once the arm arrives, whatever the processors do.
    const armedAt = new Map<string, number>();
    const armWatch = await (await new Kvm(watch).open(`${p.prefix}_arms`)).watch({ include: "updates" });
    void (async () => {
      for await (const e of armWatch) {
        if (e.operation !== "PUT" || e.length === 0) continue;
        try {
          const sid = e.json<{ sessionId: string }>().sessionId;
          if (!armedAt.has(sid)) armedAt.set(sid, performance.now());
        } catch {
          /* not an arm */
        }
      }
    })();
    /** Per measured cutoff: its latency, and how long after its target was reached it was armed (0: before). */
    const cutDetail: { ms: number; armLateMs: number }[] = [];
    const cmdSub = watch.subscribe(`${p.prefix}.cmd.>`, {
      callback: (_e, m) => {
        const now = performance.now();
        const cmd = m.json<{ type: string; sessionId: string }>();
        if (cmd.type !== "power_off") return;
        const t = bySession.get(cmd.sessionId);
        const s = t ? sessions.get(t) : undefined;
        if (!s || s.cut) return;
        s.cut = true;
        if (s.reachedAt !== undefined && measuring) {
          cutLatencies.push(now - s.reachedAt);
          cutDetail.push({ ms: now - s.reachedAt, armLateMs: Math.max(0, (armedAt.get(cmd.sessionId) ?? now) - s.reachedAt) });
        }
      },
    });

    // Where a cutoff's time goes: the processor's decision, on its way to the control service.
    const cutDecided: number[] = [];
    const cutSub = watch.subscribe(`${p.prefix}.ctl.cutoff.*`, {
      callback: (_e, m) => {
        const now = performance.now();
        const c = m.json<{ sessionId: string; reason: string }>();
        const t = bySession.get(c.sessionId);
        const s = t ? sessions.get(t) : undefined;
        if (c.reason === "target_reached" && s?.reachedAt !== undefined && measuring) cutDecided.push(now - s.reachedAt);
      },
    });

    // Leaks: when each started (reading time) and when the reading completing its debounce left.
    const leaking = new Map<string, { since?: number; completedAt?: number; detected?: boolean }>();
    const faultLatencies: number[] = [];
    const decided: number[] = [];
    const faultSub = watch.subscribe(`${p.prefix}.fault.F1.*`, {
      callback: (_e, m) => {
        const now = performance.now();
        const f = m.json<{ kind: string; status: string; terminalId: string }>();
        const l = leaking.get(f.terminalId);
        if (f.kind !== "off_current_leak" || f.status !== "open" || !l?.completedAt || l.detected) return;
        l.detected = true;
        if (measuring) faultLatencies.push(now - l.completedAt);
        // The leak stops; the terminal is left out of sessions (its fault is a safety fault).
        for (const gw of gateways) gw.terminals.get(f.terminalId)?.set({ leakA: 0 });
      },
    });
    const ctlSub = watch.subscribe(`${p.prefix}.ctl.fault.*`, {
      callback: (_e, m) => {
        const now = performance.now();
        const c = m.json<{ kind: string; change: string; terminalId: string }>();
        const l = leaking.get(c.terminalId);
        if (c.kind === "off_current_leak" && c.change === "open" && l?.completedAt && measuring) decided.push(now - l.completedAt);
      },
    });

    const jsm = await jetstreamManager(watch);
    stopTicks = () => {
      for (const t of tickers) clearTimeout(t);
      for (const gw of gateways) clearInterval((gw as any).__timer);
    };
    let lost = 0;
    const tickers = gateways.map((gw, i) =>
      setTimeout(
        () => {
          const tick = () => {
            const sent = performance.now();
            let readings: ReturnType<Gateway["tick"]> = [];
            try {
              readings = gw.tick();
            } catch (e) {
              lost++;
              if (lost === 1) console.error("a gateway's tick failed:", (e as Error).message);
            }
            for (const r of readings) {
              const l = leaking.get(r.terminalId);
              if (l && r.state === "off" && r.currentA >= 0.5 && l.completedAt === undefined) {
                l.since ??= r.ts;
                if (r.ts - l.since >= 2000) l.completedAt = sent;
              }
              noteTargetReached(gw, sessions, r, sent);
            }
          };
          tick();
          (gw as any).__timer = setInterval(tick, 1000);
        },
        (1000 / gateways.length) * i,
      ),
    );

    // Consumer pending on the telemetry stream, every 5 s (on the watching connection, made before
    // the load: a JetStream API request on the loaded connection can time out, and did, ending the run).
    const stream = `${p.prefix}_TELEMETRY`;
    const pending: { atS: number; load1: number; byConsumer: Record<string, number> }[] = [];
    const t0 = Date.now();
    const sampler = setInterval(() => {
      void (async () => {
        const byConsumer: Record<string, number> = {};
        for await (const c of jsm.consumers.list(stream)) byConsumer[c.name.slice(p.prefix.length + 1)] = c.num_pending + c.num_ack_pending;
        pending.push({ atS: Math.round((Date.now() - t0) / 1000), load1: Number(loadavg()[0]!.toFixed(2)), byConsumer });
      })().catch(() => {});
    }, 5000);

    const statuses: Record<string, number> = {};
    let leaksStarted = 0;
    let nextLeakAt = Date.now() + 5000; // after a warm-up
    // CPU used by each process over the measured window: its cost per reading.
    let cpuFrom: { parts: string; ms: number; waitMs: number; at: number }[] = [];
    const measureFrom = setTimeout(() => {
      lag.enable();
      console.log(`scale: measuring for ${o.seconds} s; load average ${loadavg()[0]!.toFixed(1)}`);
      measuring = true;
      cpuFrom = p.processes().map((x) => ({ parts: x.parts, ms: cpuMs(x.pid), waitMs: runQueueWaitMs(x.pid), at: performance.now() }));
    }, warmupMs);
    while (Date.now() - t0 < (o.seconds * 1000 + warmupMs)) {
      const live = [...sessions.values()].filter((s) => !s.cut).length;
      const idle = ids.filter((t) => (!sessions.has(t) || sessions.get(t)!.cut) && !leaking.has(t));
      // Two leaks a second, on terminals without a session, until 6 s before the end.
      while (Date.now() >= nextLeakAt && Date.now() - t0 < (o.seconds - 6) * 1000 + warmupMs) {
        nextLeakAt += 500;
        const t = idle.splice(Math.floor(Math.random() * idle.length), 1)[0];
        if (!t) break;
        leaking.set(t, {});
        leaksStarted++;
        for (const gw of gateways) gw.terminals.get(t)?.set({ leakA: 0.5 });
      }
      const need = Math.min(o.concurrent - live, 20);
      await Promise.all(
        Array.from({ length: Math.max(0, need) }, async () => {
          const t = idle.splice(Math.floor(Math.random() * idle.length), 1)[0];
          if (!t) return;
          const targetWh = Number((o.targetWh[0] + Math.random() * (o.targetWh[1] - o.targetWh[0])).toFixed(3));
          sessions.set(t, { sessionId: "", targetWh, cut: true });
          const user = users[nextUser++ % users.length]!;
          // A request the starved control service could not answer counts, and the run goes on.
          const r = await p.call("POST", "/v1/charge-requests", { qr: t, target: { energyWh: targetWh }, payment: "prepaid" }, user).catch(() => ({ status: 0, body: undefined }));
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          if (r.status === 201) {
            sessions.set(t, { sessionId: r.body.sessionId, targetWh });
            bySession.set(r.body.sessionId, t);
          }
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    clearTimeout(measureFrom);
    measuring = false;
    lag.disable();
    const liveAtEnd = [...sessions.values()].filter((s) => !s.cut).length;
    const loadAtEnd = loadavg().map((x) => Number(x.toFixed(2)));
    const cpu: Record<string, { cores: number; usPerReading: number; waitingForCore: number }> = {};
    for (const [i, proc] of p.processes().entries()) {
      const from = cpuFrom[i];
      if (!from) continue;
      const used = cpuMs(proc.pid) - from.ms;
      const wallMs = performance.now() - from.at;
      cpu[proc.parts] = {
        cores: Number((used / wallMs).toFixed(3)),
        usPerReading: Number(((used * 1000) / ((o.terminals * wallMs) / 1000)).toFixed(1)),
        // Cores' worth of time its main thread (the event loop) was ready to run and waited for a
        // core: above `cores`, the process was starved by the machine, not slow by itself.
        waitingForCore: Number(((runQueueWaitMs(proc.pid) - from.waitMs) / wallMs).toFixed(3)),
      };
    }
    const memory: Record<string, number> = {};
    for (const proc of p.processes()) memory[proc.parts] = rssMiB(proc.pid);

    const memoryWithSilent = o.silentRegistered
      ? {
          registered: o.terminals + o.silentRegistered,
          reporting: o.terminals,
          // Before and after the silent ones were registered (no load yet), and at the end of the load.
          rssMiBBeforeSilent: memoryBeforeSilent,
          rssMiBAfterSilent: memoryAfterSilent,
          rssMiB: memory,
          benchProcessMiB: rssMiB(process.pid),
        }
      : undefined;

    clearInterval(sampler);
    await new Promise((r) => setTimeout(r, 3000));
    for (const t of tickers) clearTimeout(t);
    for (const gw of gateways) {
      clearInterval((gw as any).__timer);
      await gw.stop();
    }
    armWatch.stop();
    cmdSub.unsubscribe();
    cutSub.unsubscribe();
    faultSub.unsubscribe();
    ctlSub.unsubscribe();

    const processorPending = pending.map((x) => Object.entries(x.byConsumer).filter(([k]) => k !== "writer").reduce((a, [, v]) => a + v, 0));
    const writerPending = pending.map((x) => x.byConsumer.writer ?? 0);
    const half = Math.floor(processorPending.length / 2);
    // Whether the lag grows: the least-squares slope of pending over the measured window
    // (messages a second; about 0 when bounded, the readings a second not handled when falling behind).
    const measured = pending.filter((x) => x.atS >= warmupMs / 1000 && x.atS <= o.seconds + warmupMs / 1000);
    const slope = (ys: number[]) => {
      const xs = measured.map((x) => x.atS);
      const n = xs.length;
      if (n < 3) return NaN;
      const mx = xs.reduce((a, b) => a + b, 0) / n;
      const my = ys.reduce((a, b) => a + b, 0) / n;
      const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
      return Number((xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) / sxx).toFixed(1));
    };
    const sumOf = (x: (typeof pending)[number], writer: boolean) =>
      Object.entries(x.byConsumer).filter(([k]) => (k === "writer") === writer).reduce((a, [, v]) => a + v, 0);
    const maxOf = (xs: number[]) => (xs.length ? Math.max(...xs) : NaN);
    return {
      terminals: o.terminals,
      readingsPerSecond: o.terminals,
      messages: o.batch ? "telb: one message per gateway (50 terminals) a second" : "tel: one message per reading",
      concurrentSessionsAsked: o.concurrent,
      liveSessionsAtEnd: liveAtEnd,
      seconds: o.seconds,
      loadAverage: { atStart: loadAtStart, atEnd: loadAtEnd },
      // Gateway ticks that failed to publish (the load generator's connection lost): 0 in a valid run.
      failedTicks: lost,
      warmupS: warmupMs / 1000,
      sessionTargetWh: o.targetWh,
      chargeRequestsByStatus: statuses,
      cutoffMs: ms(cutLatencies),
      cutoffDecidedMs: ms(cutDecided),
      // The cutoffs of sessions armed only after their target was reached (the arm came late: the
      // control service's handling of power_on_ack), how late their arms came, and the others'
      // latency: what the processors could have done.
      cutoffArmedLate: { n: cutDetail.filter((c) => c.armLateMs > 0).length, armLateMs: ms(cutDetail.filter((c) => c.armLateMs > 0).map((c) => c.armLateMs)) },
      cutoffArmedBeforeTargetMs: ms(cutDetail.filter((c) => c.armLateMs === 0).map((c) => c.ms)),
      leaksStarted,
      faultDetectionMs: ms(faultLatencies),
      faultDecidedMs: ms(decided),
      // Messages not yet acknowledged on the telemetry stream, every 5 s: the lag, and whether it grows.
      pending: {
        processors: { max: maxOf(processorPending), maxFirstHalf: maxOf(processorPending.slice(0, half)), maxSecondHalf: maxOf(processorPending.slice(half)), last: processorPending.at(-1) ?? NaN },
        writer: { max: maxOf(writerPending), maxFirstHalf: maxOf(writerPending.slice(0, half)), maxSecondHalf: maxOf(writerPending.slice(half)), last: writerPending.at(-1) ?? NaN },
        slopePerS: { processors: slope(measured.map((x) => sumOf(x, false))), writer: slope(measured.map((x) => sumOf(x, true))) },
        samples: pending,
      },
      // CPU over the measured window: cores used, and microseconds per reading (all its work, divided).
      cpu,
      rssMiB: memory,
      // The load generator's event loop delay over the measured window (ms): what of the latencies is its own.
      benchEventLoopDelayMs: { p50: lag.percentile(50) / 1e6, p99: lag.percentile(99) / 1e6, max: lag.max / 1e6 },
      ...(memoryWithSilent ? { memoryWithSilent } : {}),
    };
  } finally {
    stopTicks();
    await nc.close().catch(() => {});
    await watch.close().catch(() => {});
    await p.stop();
  }
}

/**
 * The curve: 1,000, 3,000 and 10,000 terminals (the memory figure with 100,000 registered at the
 * last), and at 10,000 two stress points that change one thing each (docs/scaling.md, "How to
 * measure"): single readings (one message per reading) at the curve's session rate, sessions
 * five times as short (about 50 starts a second), and both.
 *
 * The curve's sessions take 60-120 Wh at the simulated 1 Wh/s, so 1,000 live sessions start about
 * 11 a second: far above a city's rate (a session lasts hours), and enough cutoffs for a p99 in
 * five minutes. Its gateways send one batch a second for their 50 terminals.
 */
export async function benchScale(o: {
  quick: boolean;
  split: string[];
  port: number;
  /** Length of the 10,000-terminal point (s). @default 300, or 30 with --quick */
  longS?: number;
  /** Length of the smaller points (s). @default 120, or 60 with --quick */
  shortS?: number;
  /** Length of the stress points (s). @default 60, or 30 with --quick */
  stressS?: number;
  onPoint?: (partial: object) => void;
}) {
  const shortS = o.shortS ?? (o.quick ? 60 : 120);
  const stressS = o.stressS ?? (o.quick ? 30 : 60);
  const city = { targetWh: [60, 120] as [number, number], batch: true };
  const tenThousand = { terminals: 10_000, concurrent: 1000, silentRegistered: 90_000 };
  const stress = { ...tenThousand, seconds: stressS, targetWh: [10, 30] as [number, number] };
  const points: (ScalePoint & { name: string; changes?: string })[] = [
    { name: "1000", terminals: 1000, concurrent: 200, seconds: shortS, ...city },
    { name: "3000", terminals: 3000, concurrent: 300, seconds: shortS, ...city },
    { name: "10000", ...tenThousand, seconds: o.longS ?? (o.quick ? 30 : 300), ...city },
    // The curve's point with one message per reading (10,000 messages a second, as gateways that
    // do not batch send them): whether the goal depends on the batches. As long as the stress
    // points: at 120 s the benchmark's 256 MiB telemetry stream filled up (1.2 million readings),
    // and from then on the nats-server used a whole core and stopped reading the gateways' socket.
    { name: "10000-singles-city", changes: "one message per reading", ...tenThousand, seconds: stressS, ...city, batch: false },
    // What the curve's point does not ask, one thing at a time: the control service's session
    // throughput (10-30 Wh: about 50 starts and 50 bills a second), and the message count.
    { name: "10000-churn", changes: "sessions of 10-30 Wh (about 50 starts a second)", ...stress, batch: true },
    { name: "10000-singles", changes: "sessions of 10-30 Wh and one message per reading (the benchmark before 2026-11-30 evening)", ...stress, batch: false },
  ];
  // SCALE_POINTS="10000,10000-singles" runs only the points of these names (while developing).
  const only = process.env.SCALE_POINTS?.split(",");
  const curve = [];
  for (const pt of points.filter((x) => !only || only.includes(x.name))) {
    console.log(`scale: ${pt.name}: ${pt.terminals} terminals, ${pt.concurrent} sessions, ${pt.seconds} s`);
    const { name, changes, ...point } = pt;
    const r = await benchScalePoint({ ...point, port: o.port, split: o.split });
    console.log(JSON.stringify({ ...r, pending: { ...r.pending, samples: undefined } }));
    curve.push({ point: name, ...(changes ? { changes } : {}), ...r });
    o.onPoint?.({ name: "scale", processes: o.split, curve, partial: true });
  }
  return {
    name: "scale",
    processes: o.split,
    curve,
    goal: "at 10,000 terminals and 1,000 live sessions: cutoff p99 < 100 ms, fault detection p99 < 100 ms, pending bounded; 100,000 registered of which 10,000 report: every process < 1024 MiB",
  };
}
