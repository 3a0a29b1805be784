import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { expect } from "vitest";
import { createGateway, type Gateway } from "../../cli/index.ts";
import { partitionOf } from "../../processors/index.ts";
import { platformProcess, type PlatformProcess } from "./platform-process.ts";
import { SECRET, testPlatform, until, type TestPlatform } from "./platform.ts";

/**
 * The takeover scenario of issue 12, on one NATS server or a cluster: the control service and the
 * writer in the test's process, two processor instances (cutoff + faults) as processes of their
 * own sharing PARTITIONS partitions by lease. Sessions run on terminals of every partition; one
 * instance is killed with SIGKILL (and, on a cluster, a nats-server first); every session must still
 * be cut at its target and billed once, and leaks that begin around the kill opened once.
 */
export const PARTITIONS = 4;
export const LEASE_S = 5;
/** The documented bound on a takeover (docs/scaling.md, "Partitions and takeover"). */
export const TAKEOVER_BOUND_MS = 10_000;
const TARGET_WH = 15;
const quick = { faultDebounceS: 2, faultClearS: 10 };

export interface Takeover extends AsyncDisposable {
  tp: TestPlatform;
  nc: NatsConnection;
  procs: PlatformProcess[];
  gateways: Gateway[];
  /** Gateway ids, two per partition. */
  byPartition: Map<number, string[]>;
  /** partition → owner instance, as the leases bucket says now. */
  owners(): Promise<Map<number, string | null>>;
  startProcessor(): Promise<PlatformProcess>;
  /** Stops the gateways, the instances and the platform; also what dispose does. */
  stop(): Promise<void>;
}

/**
 * `parts`: what each instance process runs (cutoff and faults by default; add the writer to kill a
 * writer with it). The control service (and a writer) run in the test's own process.
 */
export async function takeoverFleet(natsUrl: string, env: Record<string, string> = {}, o: { parts?: string } = {}): Promise<Takeover> {
  const common = { NATS_URL: natsUrl, PROCESSOR_PARTITIONS: String(PARTITIONS), PROCESSOR_LEASE_S: String(LEASE_S), ...env };
  const tp = await testPlatform({ ...common, CONTROL_TICK_MS: "100" }, { parts: { cutoff: false, faults: false } });
  const nc = await connect({ servers: natsUrl.split(","), maxReconnectAttempts: -1 });
  const ok = (r: { status: number; body: unknown }) => {
    if (r.status >= 300) throw new Error(`seed failed: ${r.status} ${JSON.stringify(r.body)}`);
  };
  ok(await tp.api("PUT", "/v1/admin/regions/R1", { name: "Region 1", timezone: "UTC" }));
  ok(await tp.api("PUT", "/v1/admin/franchisees/FR1", { name: "Franchisee 1" }));
  ok(await tp.api("PUT", "/v1/admin/regions/R1/tariff", { effectiveFrom: 0, periods: [{ start: "00:00", end: "24:00", energyCentsPerKwh: 100, timeCentsPerHour: 0 }] }));
  ok(await tp.api("POST", "/v1/admin/users/U1/topups", { amountCents: 100_000, reference: "seed" }));
  // Two gateways in each partition, each with a terminal that charges and one that stays idle.
  const byPartition = new Map<number, string[]>();
  for (let i = 0; [...byPartition.values()].flat().length < PARTITIONS * 2; i++) {
    const gw = `G${i}`;
    const list = byPartition.get(partitionOf(gw, PARTITIONS)) ?? [];
    if (list.length >= 2) continue;
    list.push(gw);
    byPartition.set(partitionOf(gw, PARTITIONS), list);
  }
  const gateways: Gateway[] = [];
  for (const gw of [...byPartition.values()].flat()) {
    ok(await tp.api("PUT", `/v1/admin/gateways/${gw}`, { regionId: "R1" }));
    for (const t of [`S${gw}`, `I${gw}`]) ok(await tp.api("PUT", `/v1/admin/terminals/${t}`, { qr: `qr-${t}`, gatewayId: gw, regionId: "R1", franchiseeId: "FR1", profile: quick }));
    const g = createGateway({ nc, prefix: tp.prefix, gatewayId: gw, tickMs: 250, onError: () => {} });
    // Only the cloud stops the charging terminal: a cut the processors missed would show.
    g.addTerminal(`S${gw}`, { limits: false });
    g.addTerminal(`I${gw}`, {});
    await g.flush();
    g.start();
    gateways.push(g);
  }
  const kv = await new Kvm(nc).open(tp.p.subjects.buckets.leases);
  const procs: PlatformProcess[] = [];
  const processEnv = {
    ...common,
    DATABASE_URL: tp.config.DATABASE_URL,
    VEND_PREFIX: tp.prefix,
    VEND_JWT_SECRET: SECRET,
    LOG_LEVEL: "warn",
    STREAM_MAX_BYTES: String(tp.config.STREAM_MAX_BYTES),
    STREAM_REPLICAS: String(tp.config.STREAM_REPLICAS),
  };
  const stop = async () => {
    for (const g of gateways) await g.stop();
    for (const p of procs) await p.stop();
    await nc.close();
    await tp[Symbol.asyncDispose]();
  };
  return {
    tp,
    nc,
    procs,
    gateways,
    byPartition,
    owners() {
      // Retried: right after a server's death the bucket may answer only once its leader is elected.
      return until(async () => {
        const out = new Map<number, string | null>();
        for (let k = 0; k < PARTITIONS; k++) {
          const e = await kv.get(`partition.${k}`);
          out.set(k, e && e.operation === "PUT" && e.length ? (e.json<{ owner: string }>().owner ?? null) : null);
        }
        return out;
      }, 30_000, 200);
    },
    async startProcessor() {
      const p = await platformProcess(processEnv, { parts: o.parts ?? "cutoff,faults" });
      procs.push(p);
      return p;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Waits until `instances` distinct owners hold all partitions, as evenly as can be; returns the owners. */
export async function spread(f: Takeover, instances: number, ms = 30_000): Promise<Map<number, string | null>> {
  return until(async () => {
    const o = await f.owners();
    const counts = new Map<string, number>();
    for (const v of o.values()) if (v) counts.set(v, (counts.get(v) ?? 0) + 1);
    const held = [...counts.values()];
    const even = held.length === instances && held.every((n) => Math.abs(n - PARTITIONS / instances) < 1) && [...o.values()].every((v) => v !== null);
    return even ? o : null;
  }, ms, 200);
}

/** Starts a session on every charging terminal; resolves with their ids once all are active. */
export async function startSessions(f: Takeover, targetWh = TARGET_WH): Promise<Map<string, string>> {
  const user = await f.tp.token("U1", "user");
  const ids = new Map<string, string>();
  for (const gw of [...f.byPartition.values()].flat()) {
    const r = await f.tp.api("POST", "/v1/charge-requests", { qr: `qr-S${gw}`, target: { energyWh: targetWh }, payment: "prepaid" }, user);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    ids.set(`S${gw}`, r.body.sessionId);
  }
  for (const id of ids.values()) await until(async () => (await f.tp.api("GET", `/v1/sessions/${id}`, undefined, user)).body.state === "active", 30_000, 200);
  return ids;
}

/** Every session cut by the cloud at its target (not stopped by the terminal, not cut for silence), billed once, cut once. */
export async function checkSessions(f: Takeover, ids: Map<string, string>, targetWh = TARGET_WH): Promise<void> {
  const user = await f.tp.token("U1", "user");
  // No account-info check (on a cluster it waits for the meta leader); each look is tried again instead.
  const jsm = await jetstreamManager(f.nc, { checkAPI: false });
  const s = f.tp.p.subjects;
  // All awaited side by side, then judged together: a failure names every session that was wrong.
  const ended = await Promise.all(
    [...ids].map(async ([terminal, id]) => {
      let last: unknown = null;
      const done = await until(async () => {
        const x = await f.tp.api("GET", `/v1/sessions/${id}`, undefined, user);
        last = x.body;
        return x.body.state === "completed" ? x.body : null;
      }, 90_000, 250).catch((e: Error) => {
        throw new Error(`${terminal}'s session did not complete: ${JSON.stringify(last)}\n${diagnostics(f)}`, { cause: e });
      });
      return { terminal, id, done };
    }),
  );
  const summary = ended.map(({ terminal, done }) => `${terminal} (partition ${partitionOf(terminal.slice(1), PARTITIONS)}): ${done.stopReason} at ${done.energyWh} Wh`).join("; ");
  // Cut within a few readings of its target (1 Wh/s; readings every 250 ms; a loaded machine).
  const wrong = ended.filter(({ done }) => done.stopReason !== "target_reached" || done.energyWh < targetWh || done.energyWh >= targetWh + 4);
  console.log(`sessions (target ${targetWh} Wh): ${summary}`);
  if (wrong.length) console.log(diagnostics(f));
  expect(wrong.map((w) => w.terminal), summary).toEqual([]);
  for (const { terminal, id } of ended) {
    const { rows } = await f.tp.p.db.query("SELECT kind, count(*)::int AS n FROM wallet_ledger WHERE session_id = $1 GROUP BY kind", [id]);
    expect({ terminal, captures: rows.find((r) => r.kind === "capture")?.n }).toEqual({ terminal, captures: 1 });
    const offs = await f.tp.p.db.query("SELECT count(*)::int AS n FROM commands WHERE session_id = $1 AND type = 'power_off'", [id]);
    expect({ terminal, powerOffs: offs.rows[0].n }).toEqual({ terminal, powerOffs: 1 });
    // One cutoff in the stream for the terminal's one session, whoever decided it.
    const info = await until(() => jsm.streams.info(s.streams.control, { subjects_filter: s.cutoff(terminal) }).catch(() => null), 30_000, 200);
    expect({ terminal, cutoffs: info.state.subjects?.[s.cutoff(terminal)] ?? 0 }).toEqual({ terminal, cutoffs: 1 });
  }
}

/** The instances' warnings and partition moves, for a failure's message (their whole logs in files). */
function diagnostics(f: Takeover): string {
  const files = f.procs.map((p, i) => {
    const file = join(tmpdir(), `vv-takeover-${f.tp.prefix}-${i}.log`);
    writeFileSync(file, p.output());
    return file;
  });
  return `(whole logs: ${files.join(", ")})\n` + f.procs
    .map((p, i) => {
      const lines = p.output().split("\n").filter((l) => /"level":(40|50|60)|partition/.test(l));
      return `--- instance ${i} (${JSON.stringify(p.exited())}):\n${lines.slice(-80).join("\n")}`;
    })
    .join("\n");
}

/** The fault changes of each terminal in the CONTROL stream, as published. */
export function faultChanges(f: Takeover): Promise<Map<string, { kind: string; change: string }[]>> {
  // Read again whole until one read is complete: on a cluster, the ordered consumer may be placed on
  // a server killed moments ago, and its creation then times out (ingest/first-of.ts).
  return until(() => readFaultChanges(f).catch(() => null), 60_000, 200);
}

/**
 * Starts a leak on every idle terminal and resolves once a leaking reading of each is stored: from
 * then on, their 2 s debounce spans a kill that follows. Returns the idle terminals.
 */
export async function leakOnIdle(f: Takeover): Promise<string[]> {
  const idle = [...f.byPartition.values()].flat().map((gw) => `I${gw}`);
  const leakFrom = Date.now();
  for (const g of f.gateways) for (const [id, t] of g.terminals) if (id.startsWith("I")) t.set({ leakA: 0.5 });
  await until(async () => {
    const { rows } = await f.tp.p.db.query(
      "SELECT count(DISTINCT terminal_id)::int AS n FROM readings WHERE terminal_id = ANY($1::text[]) AND current_a > 0 AND received_at >= vv_ms_to_ts($2::bigint)",
      [idle, leakFrom],
    );
    return rows[0].n === idle.length;
  }, 30_000, 100);
  return idle;
}

/**
 * Every idle terminal's leak is open in the database, and its `open` change was published exactly
 * once, whichever instance decided it (the message id dedupes a repeat).
 */
export async function checkLeaksOpenedOnce(f: Takeover, idle: string[]): Promise<void> {
  await until(async () => {
    const { rows } = await f.tp.p.db.query("SELECT count(*)::int AS n FROM faults WHERE kind = 'off_current_leak' AND status = 'open'");
    return rows[0].n === idle.length;
  }, 30_000, 250);
  const changes = await faultChanges(f);
  for (const t of idle) expect({ t, opens: (changes.get(t) ?? []).filter((c) => c.kind === "off_current_leak" && c.change === "open").length }).toEqual({ t, opens: 1 });
}

async function readFaultChanges(f: Takeover): Promise<Map<string, { kind: string; change: string }[]> | null> {
  const js = jetstream(f.nc, { timeout: 2000 });
  const s = f.tp.p.subjects;
  const c = await js.consumers.get(s.streams.control, { filter_subjects: s.wild.faultChange });
  const out = new Map<string, { kind: string; change: string }[]>();
  const jsm = await jetstreamManager(f.nc, { checkAPI: false });
  const total = (await jsm.streams.info(s.streams.control, { subjects_filter: s.wild.faultChange })).state.subjects ?? {};
  let left = Object.values(total).reduce((a, b) => a + b, 0);
  while (left > 0) {
    const m = await c.next({ expires: 5000 });
    if (!m) return null;
    left--;
    const v = m.json<{ terminalId: string; kind: string; change: string }>();
    out.set(v.terminalId, [...(out.get(v.terminalId) ?? []), { kind: v.kind, change: v.change }]);
  }
  return out;
}

/** The process and all its descendants (tsx runs the platform in a child node process). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // Fields after the command's closing parenthesis: state, then the parent's pid.
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** The platform process whose instance id (host-pid-random) is this lease owner. */
export function ownerProcess(f: Takeover, owner: string): PlatformProcess {
  const pid = Number(owner.split("-").at(-2));
  const p = f.procs.find((x) => x.exited() === null && processTree(x.child.pid!).includes(pid));
  if (!p) throw new Error(`no running process is instance ${owner}`);
  return p;
}

/** kill -9 of the platform process and its wrapper, the platform first: no goodbye, no lease released. */
export function killHard(p: PlatformProcess): void {
  for (const pid of processTree(p.child.pid!).reverse()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
