import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import pg from "pg";
import type { Reading, Subjects } from "../../contracts/index.ts";
import type { Fleet } from "./fleet.ts";

/**
 * Cuts PostgreSQL for the platform without touching the shared server: every backend of the run's
 * own database (other than the checker's) is terminated, again and again, for `ms`, so each
 * reconnect dies at once too, as if the server were restarting.
 */
export async function cutPostgres(adminUrl: string, database: string, ms: number): Promise<{ terminated: number }> {
  const c = new pg.Client({ connectionString: adminUrl, application_name: "chaos-cutter" });
  await c.connect();
  let terminated = 0;
  try {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const r = await c.query<{ n: number }>(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid() AND coalesce(application_name, '') <> 'chaos-checker'`,
        [database],
      );
      terminated += r.rows[0]!.n;
      await new Promise((res) => setTimeout(res, 100));
    }
  } finally {
    await c.end();
  }
  return { terminated };
}

/**
 * Duplicates, delays (so reorders) and redelivers what gateways send, for `ms`: each terminal event
 * seen is published again at once, and often once more up to `lateMaxMs` later; each
 * `power_off_ack` is also held back and published again the moment its terminal serves its next
 * session (the late acknowledgement of issue 11's hole 2, as a redelivery after a crash makes it).
 * Readings are sent again, late, with and without their message id. All on each terminal's own
 * gateway subjects: this is its own gateway repeating itself, not an impostor.
 */
export async function scrambleEvents(
  fleet: Fleet,
  s: Subjects,
  ms: number,
  lateMaxMs = 30_000,
): Promise<{ eventsSeen: number; eventsRepeated: number; lateAcksAfterNextSession: number; readingsRepeated: number; pendingLate: Promise<void> }> {
  const ours = new Set<string>();
  const late: Promise<unknown>[] = [];
  let eventsSeen = 0;
  let eventsRepeated = 0;
  let lateAcks = 0;
  let readingsRepeated = 0;
  const send = async (subject: string, data: string) => {
    ours.add(data);
    if (await fleet.publishRaw(subject, data)) eventsRepeated++;
  };
  const again = (subject: string, data: string, delayMs: number) => late.push(new Promise((res) => setTimeout(() => void send(subject, data).then(res), delayMs)));
  // terminalId → a power_off_ack held back until the terminal's next session has power.
  const heldAcks = new Map<string, { subject: string; data: string; sessionId: string }>();
  const sub = fleet.nc.subscribe(s.wild.evt, {
    callback: (err, m) => {
      if (err) return;
      const data = m.string();
      if (ours.has(data)) return;
      eventsSeen++;
      again(m.subject, data, 0);
      if (Math.random() < 0.7) again(m.subject, data, 1000 + Math.random() * (lateMaxMs - 1000));
      try {
        const ev = JSON.parse(data) as { type: string; sessionId?: string };
        if ((ev.type === "power_off_ack" || ev.type === "power_off") && ev.sessionId) heldAcks.set(m.subject.slice(m.subject.lastIndexOf(".") + 1), { subject: m.subject, data, sessionId: ev.sessionId });
      } catch {
        /* the platform dead-letters it */
      }
    },
  });
  const releaseAcks = setInterval(() => {
    for (const [id, h] of heldAcks) {
      const t = fleet.terminals.get(id);
      if (t && t.relay === "on" && t.sessionId !== undefined && t.sessionId !== h.sessionId) {
        heldAcks.delete(id);
        lateAcks++;
        late.push(send(h.subject, h.data));
      }
    }
  }, 100);
  const terminals = [...fleet.taken.keys()];
  const readings = setInterval(() => {
    for (let i = 0; i < 40; i++) {
      const id = terminals[Math.floor(Math.random() * terminals.length)]!;
      const list = fleet.taken.get(id)!;
      if (list.length < 3) continue;
      // A reading from up to 30 s back: a repeat, and late behind the newer ones.
      const t = list[Math.max(0, list.length - 1 - Math.floor(Math.random() * 30))]!;
      if (!fleet.published.has(`${id}:${t.ts}`)) continue;
      const r: Reading = { ts: t.ts, seq: t.seq, state: t.relay, currentA: t.currentA, voltageV: 220, powerW: Math.round(t.currentA * 220 * 100) / 100, energyWh: t.wh };
      if (t.sessionId) r.sessionId = t.sessionId;
      void fleet.republish(id, r, Math.random() < 0.5).then((ok) => ok && readingsRepeated++);
    }
  }, 500);
  await new Promise((r) => setTimeout(r, ms));
  sub.unsubscribe();
  clearInterval(readings);
  // Held acknowledgements wait for their terminal's next session a while longer, then are dropped.
  const pendingLate = new Promise<void>((res) =>
    setTimeout(() => {
      clearInterval(releaseAcks);
      void Promise.all(late).then(() => res());
    }, lateMaxMs),
  );
  return {
    get eventsSeen() {
      return eventsSeen;
    },
    get eventsRepeated() {
      return eventsRepeated;
    },
    get lateAcksAfterNextSession() {
      return lateAcks;
    },
    get readingsRepeated() {
      return readingsRepeated;
    },
    pendingLate,
  };
}

/** The last sequence of each of the platform's streams the parts consume. */
export async function streamHeads(nc: NatsConnection, s: Subjects): Promise<Map<string, number>> {
  const jsm = await jetstreamManager(nc);
  const heads = new Map<string, number>();
  for (const name of [s.streams.telemetry, s.streams.events, s.streams.control]) heads.set(name, (await jsm.streams.info(name)).state.last_seq);
  return heads;
}

/**
 * Whether every durable consumer of those streams has processed (acknowledged) all that its stream
 * held at `heads`: nothing published before the fault is still waiting. Returns the laggards.
 */
export async function laggingConsumers(nc: NatsConnection, heads: Map<string, number>): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const lagging: string[] = [];
  for (const [stream, head] of heads) {
    for await (const ci of jsm.consumers.list(stream)) {
      if (!ci.config.durable_name) continue;
      const delivered = ci.num_pending === 0 || ci.delivered.stream_seq >= head;
      const acked = ci.num_ack_pending === 0 || ci.ack_floor.stream_seq >= head;
      if (!delivered || !acked) lagging.push(`${ci.name} (pending ${ci.num_pending}, unacked ${ci.num_ack_pending}, floor ${ci.ack_floor.stream_seq} < ${head})`);
    }
  }
  return lagging;
}

/** When the processors last wrote a terminal's live state (they do for each terminal every few seconds while they consume). */
export async function liveWrittenAt(nc: NatsConnection, s: Subjects): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return Date.parse((await jsm.streams.info(`KV_${s.buckets.live}`)).state.last_ts);
}
