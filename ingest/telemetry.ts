import type { JsMsg } from "@nats-io/jetstream";
import { batchEnvelopeSchema, batchReadingSchema, idPattern, readingSchema, subjectTokens, type Reading } from "../contracts/index.ts";
import { PoisonMessageError, type Decoded } from "./consume.ts";

export interface TelemetryItem {
  gatewayId: string;
  terminalId: string;
  reading: Reading;
  /** When the stream stored the message, by the server's clock (ms): the platform's "seen at". */
  storedAt: number;
  /** Messages still pending on the consumer after this one: 0 means the reader is caught up. */
  pending: number;
  /** The message it came in, and its place in a batch (0 for a single reading). */
  msg: JsMsg;
  part: number;
}

/** Options for checks that need the platform's view: its clock. */
export interface TelemetryChecks {
  now: () => number;
  /** A reading more than this far ahead of the platform's clock is rejected. @default 300000 */
  maxFutureMs?: number;
  /**
   * For readers that need only some terminals: readings of other terminals are skipped before
   * they are parsed or validated (they are neither items nor rejects). @default all wanted
   */
  want?: (terminalId: string, seenAt: number) => boolean;
}

// Per message, on every consumer of the stream: one decoder, and the id pattern without zod.
const utf8 = new TextDecoder();

function zodReason(e: { issues: { path: PropertyKey[]; message: string }[] }): string {
  return e.issues.map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`).join("; ");
}

/**
 * Decodes `tel.<gw>.<terminal>` and `telb.<gw>` messages into readings. A malformed message as a
 * whole is poison; in a batch, each bad reading is rejected alone and the rest go on.
 */
export function decodeTelemetry(prefix: string, m: JsMsg, checks: TelemetryChecks): Decoded<TelemetryItem> {
  const tokens = subjectTokens(prefix, m.subject);
  const kind = tokens[0];
  const gatewayId = tokens[1] ?? "";
  if (!idPattern.test(gatewayId)) throw new PoisonMessageError(`bad gateway id in subject ${m.subject}`);
  const storedAt = Math.floor(Number(m.info.timestampNanos) / 1e6);
  if (checks.want && kind === "tel" && tokens.length === 3 && !checks.want(tokens[2]!, storedAt)) return { items: [], rejects: [] };
  let body: unknown;
  try {
    body = JSON.parse(utf8.decode(m.data));
  } catch (e) {
    throw new PoisonMessageError("payload is not JSON", "not_json", { cause: e });
  }
  const pending = m.info.pending;
  const maxAhead = checks.maxFutureMs ?? 300_000;
  const future = (r: Reading) => r.ts > checks.now() + maxAhead;

  if (kind === "tel" && tokens.length === 3) {
    const terminalId = tokens[2]!;
    if (!idPattern.test(terminalId)) throw new PoisonMessageError(`bad terminal id in subject ${m.subject}`);
    const r = readingSchema.safeParse(body);
    if (!r.success) throw new PoisonMessageError(zodReason(r.error));
    if (future(r.data)) throw new PoisonMessageError(`ts ${r.data.ts} is more than ${maxAhead / 1000} s ahead of the platform clock`, "future_ts");
    return { items: [{ gatewayId, terminalId, reading: r.data, storedAt, pending, msg: m, part: 0 }], rejects: [] };
  }
  if (kind === "telb" && tokens.length === 2) {
    const env = batchEnvelopeSchema.safeParse(body);
    if (!env.success) throw new PoisonMessageError(zodReason(env.error));
    const out: Decoded<TelemetryItem> = { items: [], rejects: [] };
    env.data.readings.forEach((raw, part) => {
      if (checks.want) {
        const id = (raw as { terminalId?: unknown } | null)?.terminalId;
        if (typeof id !== "string" || !checks.want(id, storedAt)) return;
      }
      const r = batchReadingSchema.safeParse(raw);
      // The reading's own text only for a dead letter: most readings are fine.
      if (!r.success) out.rejects.push({ code: "invalid", reason: `readings.${part}: ${zodReason(r.error)}`, payload: JSON.stringify(raw), part });
      else if (future(r.data))
        out.rejects.push({
          code: "future_ts",
          reason: `readings.${part}: ts is more than ${maxAhead / 1000} s ahead of the platform clock`,
          payload: JSON.stringify(raw),
          part,
        });
      else {
        const { terminalId, ...reading } = r.data;
        out.items.push({ gatewayId, terminalId, reading, storedAt, pending, msg: m, part });
      }
    });
    return out;
  }
  throw new PoisonMessageError(`unexpected telemetry subject ${m.subject}`);
}

/**
 * For the stream processors: the valid readings of a message, the invalid ones skipped without a
 * dead letter (dead-lettering and counting them is the writer's job, once).
 */
export function validReadings(prefix: string, m: JsMsg, checks: TelemetryChecks): Decoded<TelemetryItem> {
  try {
    return { items: decodeTelemetry(prefix, m, checks).items, rejects: [] };
  } catch (e) {
    if (e instanceof PoisonMessageError) return { items: [], rejects: [] };
    throw e;
  }
}
