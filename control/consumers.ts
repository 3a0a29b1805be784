import type { z } from "zod";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { cutoffSchema, faultChangeSchema, idSchema, subjectTokens, terminalEventSchema, type Cutoff, type FaultChange, type Subjects, type TerminalEvent } from "../contracts/index.ts";
import type { FaultService } from "./faults/service.ts";
import type { JsMsg } from "@nats-io/jetstream";
import { deadLetterer, isPermanent, permanentReason, PoisonMessageError, runConsumer, type LateReject, type RunningConsumer } from "../ingest/index.ts";
import type { Metrics } from "./metrics.ts";
import type { SessionService } from "./sessions/service.ts";

/** Sessions (or terminals) whose messages are handled side by side. */
const EVENT_LANES = 4;

/** Runs items grouped by key: each group in order, up to `lanes` groups at once. */
async function inLanes<T>(items: T[], key: (t: T) => string, lanes: number, run: (t: T) => Promise<void>): Promise<void> {
  const groups = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const g = groups.get(k);
    if (g) g.push(it);
    else groups.set(k, [it]);
  }
  const queue = [...groups.values()];
  const lane = async () => {
    for (let g = queue.shift(); g; g = queue.shift()) for (const it of g) await run(it);
  };
  await Promise.all(Array.from({ length: Math.min(lanes, queue.length) }, lane));
}

export interface EventItem {
  gatewayId: string;
  terminalId: string;
  event: TerminalEvent;
  msg: JsMsg;
}

/**
 * The batch without events that repeat, field for field, the previous event of the same session
 * (or terminal) in it: a terminal answers each repeat of a command with the same event again, and
 * handling the copy right after the original would only re-issue the original's idempotent
 * effects. Only back-to-back copies go: a copy after another event of the session is handled, as
 * its order may matter (a power_on_ack after the session ended switches the terminal off).
 * The copies are acknowledged with the batch.
 */
export function withoutRepeats(items: EventItem[]): EventItem[] {
  const previous = new Map<string, string>();
  return items.filter((it) => {
    const key = "sessionId" in it.event ? it.event.sessionId : `boot:${it.terminalId}`;
    const same = JSON.stringify([it.gatewayId, it.terminalId, it.event]);
    if (previous.get(key) === same) return false;
    previous.set(key, same);
    return true;
  });
}

/**
 * Runs one message's handling; an error that would come again on every retry (isPermanent)
 * makes it a dead letter instead of failing the batch, which would be redelivered without end.
 */
async function orRefuse(msg: JsMsg, refused: LateReject[], run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (e) {
    if (!isPermanent(e)) throw e;
    refused.push({ msg, reject: { code: "unhandled", reason: `cannot be handled: ${permanentReason(e)}`, payload: new TextDecoder().decode(msg.data), part: 0 } });
  }
}

/** A message's JSON payload checked against its schema; anything else is poison, with every problem named. */
function parseWith<T>(schema: z.ZodType<T>, data: Uint8Array): T {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(data));
  } catch (e) {
    throw new PoisonMessageError("payload is not JSON", "not_json", { cause: e });
  }
  const p = schema.safeParse(raw);
  if (!p.success) throw new PoisonMessageError(p.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; "));
  return p.data;
}

/**
 * Seconds before a control instance's unacknowledged events and cutoffs go to another delivery:
 * a killed instance's cutoffs are acted on within this, not the 30 s default (measured in the
 * chaos suite). Handling keeps its messages alive while it runs (ingest/consume.ts).
 */
const CONTROL_ACK_WAIT_S = 5;

/**
 * Terminal events and cutoffs reach the control service through shared durable consumers: with
 * several control instances, each message goes to one of them, and the row lock on the session
 * orders whatever two instances do to one session.
 */
export async function startControlConsumers(o: {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  metrics: Metrics;
  sessions: SessionService;
  faults: FaultService;
}): Promise<RunningConsumer[]> {
  const { nc, subjects: s, log, metrics, sessions, faults } = o;
  const dlq = deadLetterer(nc, s, (code) => metrics.deadLetters.inc({ source: "events", code }));

  const events = await runConsumer<EventItem>({
    nc,
    log,
    stream: s.streams.events,
    durable: s.consumer("control_events"),
    maxBatch: 100,
    ackWaitS: CONTROL_ACK_WAIT_S,
    decode: (m) => {
      const [, gatewayId = "", terminalId = ""] = subjectTokens(s.prefix, m.subject);
      if (!idSchema.safeParse(gatewayId).success || !idSchema.safeParse(terminalId).success)
        throw new PoisonMessageError(`bad ids in subject ${m.subject}`);
      return { items: [{ gatewayId, terminalId, event: parseWith(terminalEventSchema, m.data), msg: m }], rejects: [] };
    },
    deadLetter: dlq,
    // Events of one session are handled in order, sessions side by side (a batch holds many
    // terminals' events; one at a time would let power_on_ack wait behind others and arm late).
    // A transient failure redelivers the batch (handling is idempotent); an event that can never
    // be handled is dead-lettered alone, and the events after it go on.
    handle: async (items) => {
      const refused: LateReject[] = [];
      // At most a few sessions at once: the database pool is shared with the cutoff path, whose
      // latency matters more.
      await inLanes(withoutRepeats(items), (it) => ("sessionId" in it.event ? it.event.sessionId : `boot:${it.terminalId}`), EVENT_LANES, (it) =>
        orRefuse(it.msg, refused, () => sessions.onEvent(it.gatewayId, it.terminalId, it.event)),
      );
      return refused;
    },
  });

  const cutoffs = await runConsumer<{ c: Cutoff; msg: JsMsg }>({
    nc,
    log,
    stream: s.streams.control,
    durable: s.consumer("control_cutoffs"),
    filterSubject: s.wild.cutoff,
    maxBatch: 100,
    ackWaitS: CONTROL_ACK_WAIT_S,
    decode: (m) => ({ items: [{ c: parseWith(cutoffSchema, m.data), msg: m }], rejects: [] }),
    deadLetter: dlq,
    handle: async (items) => {
      const refused: LateReject[] = [];
      await Promise.all(items.map(({ c, msg }) => orRefuse(msg, refused, () => sessions.onCutoff(c))));
      return refused;
    },
  });
  // Fault changes, in order per terminal (one terminal's open comes before its resolve).
  const faultChanges = await runConsumer<{ c: FaultChange; msg: JsMsg }>({
    nc,
    log,
    stream: s.streams.control,
    durable: s.consumer("control_faults"),
    filterSubject: s.wild.faultChange,
    maxBatch: 100,
    ackWaitS: CONTROL_ACK_WAIT_S,
    decode: (m) => ({ items: [{ c: parseWith(faultChangeSchema, m.data), msg: m }], rejects: [] }),
    deadLetter: dlq,
    // One terminal's changes in order, terminals side by side: a burst of faults (a storm, a
    // gateway back online) is not handled one after another.
    handle: async (items) => {
      const refused: LateReject[] = [];
      await inLanes(items, ({ c }) => c.terminalId, EVENT_LANES, ({ c, msg }) => orRefuse(msg, refused, () => faults.onChange(c)));
      return refused;
    },
  });
  return [events, cutoffs, faultChanges];
}
