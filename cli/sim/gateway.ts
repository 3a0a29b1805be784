import { headers, RequestError, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import { jserrors } from "@nats-io/jetstream/internal";
import { commandSchema, idSchema, subjects, type BatchReading, type TerminalEvent } from "../../contracts/index.ts";
import { SimTerminal, type TerminalOptions } from "./terminal.ts";

export interface GatewayOptions {
  nc: NatsConnection;
  prefix: string;
  gatewayId: string;
  /** Reading and event times; inject one to drive time by hand. @default Date.now */
  clock?: () => number;
  /** Reading interval of `start()`. @default 1000 */
  tickMs?: number;
  /** true: one `telb` message per tick instead of one `tel` message per terminal. */
  batch?: boolean;
  /** Publish failures (the simulator keeps running). @default console.warn */
  onError?: (err: unknown) => void;
}

/** A command the gateway did not hand to a terminal, and why. */
export interface IgnoredCommand {
  subject: string;
  payload: string;
  reason: "invalid" | "unknown_terminal" | "offline";
  detail?: string;
}

export interface Gateway extends AsyncDisposable {
  readonly gatewayId: string;
  readonly terminals: ReadonlyMap<string, SimTerminal>;
  /** Commands that were invalid, for an unknown terminal, or sent to an offline terminal. */
  readonly ignored: IgnoredCommand[];
  addTerminal(terminalId: string, options?: TerminalOptions): SimTerminal;
  /** Every `tickMs`, each online terminal publishes one reading. */
  start(): void;
  /** Each online terminal publishes one reading now; returns what was published. */
  tick(): BatchReading[];
  /** Waits until every event handed over so far is published and the server has seen it all. */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A gateway hosting simulated terminals, speaking protocol v1 over real NATS. Commands are received
 * from the moment it is created; await `flush()` before sending it commands from another connection,
 * so that its subscription has reached the server.
 */
export function createGateway(opts: GatewayOptions): Gateway {
  const { nc, prefix, clock = Date.now, tickMs = 1000, batch = false, onError = console.warn } = opts;
  const gatewayId = idSchema.parse(opts.gatewayId);
  const s = subjects(prefix);
  const terminals = new Map<string, SimTerminal>();
  const ignored: IgnoredCommand[] = [];
  const publishEvent = eventPublisher(nc);
  // Events go out one after another, in the order the terminals sent them, like a real uplink.
  let uplink: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  // An event that did not get out is tried again, in order, until it does or the gateway stops:
  // a terminal's own power_off (limit) is the only report of a stop the cloud did not make. A
  // retry after a publish whose ack was lost may deliver an event twice; events are idempotent.
  const publishUntilDone = async (subject: string, data: string) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await publishEvent(subject, data);
      } catch (e) {
        onError(e);
        if (stopped) return;
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  };
  const link = {
    clock,
    send(terminalId: string, event: TerminalEvent) {
      const data = JSON.stringify(event);
      uplink = uplink.then(() => publishUntilDone(s.evt(gatewayId, terminalId), data));
    },
  };

  const onCommand = (msg: Msg) => {
    const payload = msg.string();
    const terminalId = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
    let parsed;
    try {
      parsed = commandSchema.safeParse(JSON.parse(payload));
    } catch (e) {
      return void ignored.push({ subject: msg.subject, payload, reason: "invalid", detail: String(e) });
    }
    if (!parsed.success) {
      return void ignored.push({ subject: msg.subject, payload, reason: "invalid", detail: parsed.error.message });
    }
    const terminal = terminals.get(terminalId);
    if (!terminal) return void ignored.push({ subject: msg.subject, payload, reason: "unknown_terminal" });
    if (!terminal.receive(parsed.data)) ignored.push({ subject: msg.subject, payload, reason: "offline" });
  };
  const sub: Subscription = nc.subscribe(s.cmd(gatewayId, "*"), {
    callback: (err, msg) => (err ? onError(err) : onCommand(msg)),
  });

  const tick = (): BatchReading[] => {
    const now = clock();
    const out: BatchReading[] = [];
    for (const t of terminals.values()) {
      const r = t.read(now);
      if (r) out.push({ terminalId: t.terminalId, ...r });
    }
    if (out.length === 0) return out;
    if (batch) {
      nc.publish(s.telBatch(gatewayId), JSON.stringify({ readings: out }));
    } else {
      for (const { terminalId, ...r } of out) {
        // Lets a stream drop a retried reading: (terminalId, ts) identifies a reading.
        const h = headers();
        h.set("Nats-Msg-Id", `${terminalId}:${r.ts}`);
        nc.publish(s.tel(gatewayId, terminalId), JSON.stringify(r), { headers: h });
      }
    }
    return out;
  };

  const stop = async () => {
    if (!stopped) {
      stopped = true;
      clearInterval(timer);
      timer = undefined;
      sub.unsubscribe();
      for (const t of terminals.values()) t.close();
    }
    await uplink;
  };

  return {
    gatewayId,
    terminals,
    ignored,
    addTerminal(terminalId, options) {
      const id = idSchema.parse(terminalId);
      if (terminals.has(id)) throw new Error(`terminal ${id} already exists on gateway ${gatewayId}`);
      const t = new SimTerminal(id, link, options);
      terminals.set(id, t);
      return t;
    },
    start() {
      if (timer || stopped) return;
      timer = setInterval(() => {
        try {
          tick();
        } catch (e) {
          onError(e);
        }
      }, tickMs);
    },
    tick,
    async flush() {
      await uplink;
      await nc.flush();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Publishes an event through JetStream when a stream captures its subject, and with core NATS
 * otherwise, so the simulator also works before a platform created its streams. The stream is
 * looked up first rather than inferred from a failed publish: with no stream but a core
 * subscriber, a JetStream publish is delivered to that subscriber and then times out waiting
 * for an ack, and publishing again would deliver it twice.
 */
function eventPublisher(nc: NatsConnection) {
  const js = jetstream(nc);
  let jsm: Promise<JetStreamManager> | undefined;
  const captured = async (subject: string): Promise<boolean> => {
    try {
      jsm ??= jetstreamManager(nc);
      await (await jsm).streams.find(subject);
      return true;
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound) return false;
      // JetStream not enabled: look again next time, it may be later.
      jsm = undefined;
      if (noResponders(e)) return false;
      // No answer at all (a lost connection): not "no stream", so not a core publish into the void.
      throw e;
    }
  };
  return async (subject: string, data: string): Promise<void> => {
    if (await captured(subject)) {
      try {
        await js.publish(subject, data);
        return;
      } catch (e) {
        // The stream went away since the lookup and nobody listens: nothing was delivered.
        if (!noResponders(e)) throw e;
      }
    }
    nc.publish(subject, data);
  };
}

/** The JetStream client reports "no responders" (503) as JetStreamNotEnabled (exported from its internal entry). */
function noResponders(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  return e instanceof jserrors.JetStreamNotEnabled || (e.cause instanceof RequestError && e.cause.isNoResponders());
}
