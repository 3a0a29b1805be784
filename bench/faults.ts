import { connect } from "@nats-io/transport-node";
import { percentile, startPlatformProcess, NATS_URL } from "./harness.ts";

/**
 * Fault detection latency: from the publish of the reading that completes a leak's debounce (the
 * reading that makes it a fault) to the fault event on the franchisee's subject, while the
 * platform carries `rate` readings/s (1000 terminals, `rate / 1000` readings per second each).
 */
export async function benchFaults(o: { port: number; rate: number; seconds: number; split?: string[] }) {
  const p = await startPlatformProcess("faults", o.port, {}, o.split);
  const nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
  try {
    const terminals = 1000;
    await p.call("PUT", "/v1/admin/regions/R1", { name: "Bench", timezone: "Asia/Shanghai" });
    await p.call("PUT", "/v1/admin/franchisees/F1", { name: "Bench" });
    for (let g = 0; g < 20; g++) await p.call("PUT", `/v1/admin/gateways/G${g}`, { regionId: "R1" });
    for (let t = 0; t < terminals; t += 50)
      await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          p.call("PUT", `/v1/admin/terminals/T${t + j}`, { qr: `q${t + j}`, gatewayId: `G${Math.floor((t + j) / 50)}`, regionId: "R1", franchiseeId: "F1" }),
        ),
      );
    await new Promise((r) => setTimeout(r, 1500)); // terminals reach the fault processor's bucket

    const perTerminalHz = o.rate / terminals;
    const stepMs = 1000 / perTerminalHz;
    // Leaks: after a warm-up (JIT, consumers' first pulls), terminal k starts leaking at second
    // warmup+k/10: one new leak every 100 ms, each done by 4 s before the end.
    const warmupMs = 5000;
    const leaks = Math.max(0, (o.seconds - warmupMs / 1000 - 4) * 10);
    const leakFrom = new Map<string, number>();
    const completedAt = new Map<string, number>(); // publish time of the debounce-completing reading
    const latencies: number[] = [];
    // Where the time goes: the fault processor's decision, on its way to the control service.
    const decided: number[] = [];
    const ctl = nc.subscribe(`${p.prefix}.ctl.fault.*`);
    void (async () => {
      for await (const m of ctl) {
        const now = performance.now();
        const c = m.json<{ kind: string; change: string; terminalId: string }>();
        const sent = completedAt.get(c.terminalId);
        if (c.kind === "off_current_leak" && c.change === "open" && sent !== undefined) decided.push(now - sent);
      }
    })();
    const sub = nc.subscribe(`${p.prefix}.fault.F1.*`);
    void (async () => {
      for await (const m of sub) {
        const now = performance.now();
        const f = m.json<{ kind: string; status: string; terminalId: string }>();
        if (f.kind !== "off_current_leak" || f.status !== "open") continue;
        const sent = completedAt.get(f.terminalId);
        if (sent !== undefined) latencies.push(now - sent);
      }
    })();

    const start = Date.now();
    let seq = 0;
    let published = 0;
    const energy = new Map<number, number>();
    // Terminals report at their own phase, as independent devices do: each 100 ms period is cut in
    // `slices`, and each slice publishes its own tenth of the fleet (not all 1000 in one burst).
    const slices = 10;
    const perSlice = terminals / slices;
    while (Date.now() - start < o.seconds * 1000) {
      seq++;
      for (let slice = 0; slice < slices; slice++) {
        const sliceStart = Date.now();
        const ts = sliceStart;
        for (let t = slice * perSlice; t < (slice + 1) * perSlice; t++) {
          const id = `T${t}`;
          const elapsed = ts - start;
          const victim = t < leaks && elapsed >= warmupMs + t * 100;
          if (victim && !leakFrom.has(id)) leakFrom.set(id, ts);
          const reading = { ts, seq, state: "off", currentA: victim ? 0.5 : 0, voltageV: 220, energyWh: energy.get(t) ?? 1000 };
          nc.publish(`${p.prefix}.tel.G${Math.floor(t / 50)}.${id}`, JSON.stringify(reading));
          published++;
          const since = leakFrom.get(id);
          if (since !== undefined && !completedAt.has(id) && ts - since >= 2000) completedAt.set(id, performance.now());
        }
        await nc.flush();
        await new Promise((r) => setTimeout(r, Math.max(0, stepMs / slices - (Date.now() - sliceStart))));
      }
    }
    const achieved = published / ((Date.now() - start) / 1000);
    await new Promise((r) => setTimeout(r, 3000));
    sub.unsubscribe();
    ctl.unsubscribe();
    latencies.sort((a, b) => a - b);
    decided.sort((a, b) => a - b);
    return {
      name: "fault_detection_latency",
      processes: o.split ?? ["control,cutoff,faults,writer"],
      readingsPerSecond: o.rate,
      achievedReadingsPerSecond: Math.round(achieved),
      seconds: o.seconds,
      leaks: completedAt.size,
      detected: latencies.length,
      ms: { p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN },
      processorDecidedMs: { p50: percentile(decided, 50), p99: percentile(decided, 99) },
      measuredFrom: "publish of the reading that completes the 2 s debounce",
      load: `${terminals} terminals at ${perTerminalHz} Hz each, spread over ${slices} phases per period`,
      goal: "p99 < 50 ms",
    };
  } finally {
    await nc.close();
    await p.stop();
  }
}
