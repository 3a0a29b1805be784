import { jetstream } from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/nats-core";
import type pg from "pg";
import { until } from "./platform.ts";

export interface AckedLoad extends AsyncDisposable {
  /** Every (terminal, ts) the stream acknowledged, and when. */
  acked: { t: string; ts: number; at: number }[];
  /** Publish attempts that failed (no ack in time) and were tried again. */
  failures(): number;
  /** Stops publishing and waits for the attempts under way; also what dispose does. */
  stop(): Promise<void>;
}

/**
 * Readings published through JetStream one at a time per terminal (a register that goes up, so no
 * reordering makes one look backwards), each retried with its own Nats-Msg-Id until acknowledged:
 * the load of "no acknowledged reading lost or stored twice" (issue 12, point 3).
 */
export function ackedLoad(nc: NatsConnection, prefix: string, gatewayId: string, terminals: string[], o: { gapMs?: number } = {}): AckedLoad {
  const js = jetstream(nc, { timeout: 2000 });
  const acked: AckedLoad["acked"] = [];
  let stopping = false;
  let failures = 0;
  const one = async (t: string) => {
    let ts = 0;
    let wh = 0;
    while (!stopping) {
      ts = Math.max(ts + 1, Date.now());
      wh += 0.1;
      const body = JSON.stringify({ ts, seq: acked.length, state: "off", currentA: 0, voltageV: 230, energyWh: Number(wh.toFixed(1)) });
      const h = headers();
      h.set("Nats-Msg-Id", `${t}:${ts}`);
      for (;;) {
        try {
          await js.publish(`${prefix}.tel.${gatewayId}.${t}`, body, { headers: h });
          acked.push({ t, ts, at: Date.now() });
          break;
        } catch {
          failures++;
          if (stopping) break;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      await new Promise((r) => setTimeout(r, o.gapMs ?? 20));
    }
  };
  const running = Promise.all(terminals.map(one));
  const stop = async () => {
    stopping = true;
    await running;
  };
  return { acked, failures: () => failures, stop, [Symbol.asyncDispose]: stop };
}

/**
 * Waits until every acknowledged reading of the load is in the readings table, and returns those
 * stored more than once (none, when the writers are right).
 */
export async function storedOnce(db: pg.Pool, load: AckedLoad, terminals: string[], ms = 60_000): Promise<{ terminal_id: string; ms: number; n: number }[]> {
  const key = (t: string, ts: number) => `${t}/${ts}`;
  const want = new Set(load.acked.map((a) => key(a.t, a.ts)));
  const rows = await until(async () => {
    const r = await db.query("SELECT terminal_id, (extract(epoch FROM ts) * 1000)::bigint AS ms, count(*)::int AS n FROM readings WHERE terminal_id = ANY($1::text[]) GROUP BY 1, 2", [terminals]);
    const have = new Set(r.rows.map((x) => key(x.terminal_id, Number(x.ms))));
    return [...want].every((k) => have.has(k)) ? r.rows : null;
  }, ms, 500).catch(async (e) => {
    const r = await db.query("SELECT count(*)::int AS n FROM readings WHERE terminal_id = ANY($1::text[])", [terminals]);
    throw new Error(`${(e as Error).message}: ${want.size} acknowledged, ${r.rows[0].n} stored`);
  });
  return rows.filter((r) => r.n !== 1).map((r) => ({ terminal_id: r.terminal_id, ms: Number(r.ms), n: r.n }));
}
