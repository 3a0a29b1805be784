import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects as makeSubjects, type Reading, type Subjects } from "../../contracts/index.ts";
import { createGateway, type Gateway, type SimTerminal } from "../../cli/index.ts";

/** One reading as the terminal took it, whether or not it reached the cloud. */
export interface Taken {
  ts: number;
  seq: number;
  wh: number;
  relay: "on" | "off";
  currentA: number;
  sessionId: string | undefined;
}

export interface FleetOptions {
  natsUrl: string;
  prefix: string;
  gateways: number;
  terminalsPerGateway: number;
  /** @default 1000 */
  tickMs?: number;
  /** Terminals that draw over-current a few readings into each session (a safety stop). */
  overCurrentEvery?: number;
}

/**
 * A fleet of simulated terminals on their gateways (cli/sim). Readings are published the way the
 * protocol asks a careful gateway to: a JetStream publish with `Nats-Msg-Id: <terminalId>:<ts>`,
 * retried until acknowledged. Every reading taken and every acknowledgement is recorded, so the
 * run can check that each acknowledged reading is stored once.
 */
export class Fleet {
  readonly s: Subjects;
  readonly gateways: Gateway[] = [];
  /** terminalId → gatewayId */
  readonly home = new Map<string, string>();
  readonly terminals = new Map<string, SimTerminal>();
  /** terminalId → every reading taken, in order. */
  readonly taken = new Map<string, Taken[]>();
  /** `${terminalId}:${ts}` → register in mWh, for every reading JetStream acknowledged. */
  readonly acked = new Map<string, { mwh: bigint; at: number }>();
  /** Every (terminalId, ts) ever published, with its register (mWh), duplicates and late ones included. */
  readonly published = new Map<string, bigint>();
  publishFailures = 0;
  #retry: { key: string; subject: string; data: string; firstAt: number }[] = [];
  #nc!: NatsConnection;
  #js!: JetStreamClient;
  #timer: NodeJS.Timeout | undefined;
  #inflight = 0;
  readonly overCurrent = new Set<string>();

  constructor(readonly o: FleetOptions) {
    this.s = makeSubjects(o.prefix);
  }

  async start(): Promise<void> {
    this.#nc = await connect({ servers: this.o.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 250, name: "chaos-fleet" });
    this.#js = jetstream(this.#nc, { timeout: 3000 });
    let n = 0;
    for (let g = 1; g <= this.o.gateways; g++) {
      const gatewayId = `G${String(g).padStart(2, "0")}`;
      const gw = createGateway({ nc: this.#nc, prefix: this.o.prefix, gatewayId, onError: () => {} });
      for (let i = 1; i <= this.o.terminalsPerGateway; i++) {
        const id = `T${String(++n).padStart(3, "0")}`;
        const t = gw.addTerminal(id, { currentA: 16.8, energyWh: 100_000 + n * 1000 });
        this.home.set(id, gatewayId);
        this.terminals.set(id, t);
        this.taken.set(id, []);
        if (this.o.overCurrentEvery && n % this.o.overCurrentEvery === 0) this.overCurrent.add(id);
      }
      await gw.flush();
      this.gateways.push(gw);
    }
    this.#timer = setInterval(() => this.tick(), this.o.tickMs ?? 1000);
  }

  get nc(): NatsConnection {
    return this.#nc;
  }

  /** Each terminal takes one reading; each is published (with the backlog of unacknowledged ones first). */
  tick(now = Date.now()): void {
    const retry = this.#retry;
    this.#retry = [];
    for (const r of retry) if (now - r.firstAt < 120_000) this.#publish(r.key, r.subject, r.data, r.firstAt);
    for (const [id, t] of this.terminals) {
      this.#behave(id, t);
      const r = t.read(now);
      if (!r) continue;
      this.taken.get(id)!.push({ ts: r.ts, seq: r.seq, wh: r.energyWh, relay: r.state, currentA: r.currentA, sessionId: r.sessionId });
      const key = `${id}:${r.ts}`;
      this.published.set(key, mwh(r.energyWh));
      this.#publish(key, this.s.tel(this.home.get(id)!, id), JSON.stringify(r), now);
    }
  }

  /** Over-current terminals draw 25 A from their fourth reading with power on. */
  #behave(id: string, t: SimTerminal): void {
    if (!this.overCurrent.has(id)) return;
    const list = this.taken.get(id)!;
    let on = 0;
    for (let i = list.length - 1; i >= 0 && list[i]!.relay === "on" && list[i]!.sessionId === t.sessionId; i--) on++;
    const want = t.relay === "on" && on >= 3 ? 25 : 16.8;
    if (t.behaviour.currentA !== want) t.set({ currentA: want });
  }

  #publish(key: string, subject: string, data: string, firstAt: number): void {
    this.#inflight++;
    this.#js
      .publish(subject, data, { msgID: key, timeout: 3000 })
      .then(() => {
        if (!this.acked.has(key)) this.acked.set(key, { mwh: this.published.get(key)!, at: Date.now() });
      })
      .catch(() => {
        this.publishFailures++;
        this.#retry.push({ key, subject, data, firstAt });
      })
      .finally(() => this.#inflight--);
  }

  /** Publishes a reading again (a gateway's duplicate or a late copy): with or without its message id. */
  async republish(terminalId: string, r: Reading, withMsgId: boolean): Promise<boolean> {
    const key = `${terminalId}:${r.ts}`;
    try {
      await this.#js.publish(this.s.tel(this.home.get(terminalId)!, terminalId), JSON.stringify(r), withMsgId ? { msgID: key, timeout: 3000 } : { timeout: 3000 });
      this.published.set(key, mwh(r.energyWh));
      if (!this.acked.has(key)) this.acked.set(key, { mwh: mwh(r.energyWh), at: Date.now() });
      return true;
    } catch {
      return false;
    }
  }

  /** Publishes raw data on a subject through JetStream (duplicated and late terminal events). */
  async publishRaw(subject: string, data: string): Promise<boolean> {
    try {
      await this.#js.publish(subject, data, { timeout: 3000 });
      return true;
    } catch {
      return false;
    }
  }

  get backlog(): number {
    return this.#retry.length + this.#inflight;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    for (const g of this.gateways) await Promise.race([g.stop(), new Promise((r) => setTimeout(r, 5000))]);
    await this.#nc.close();
  }
}

/** The register as the platform stores it: integer mWh, exact to the three decimals meters report. */
export function mwh(wh: number): bigint {
  return BigInt(Math.round(wh * 1000));
}
