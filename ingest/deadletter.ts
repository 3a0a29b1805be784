import { jetstream, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { subjectTokens, type DeadLetter, type Subjects } from "../contracts/index.ts";
import type { Reject } from "./consume.ts";

/**
 * Publishes `{subject, reason, payload}` to `<prefix>.dlq.<gatewayId>`. The message id is the
 * source stream and sequence plus the part, so redelivery (or two consumers of one stream)
 * stores each dead letter once.
 */
export function deadLetterer(nc: NatsConnection, s: Subjects, onLetter?: (code: string) => void) {
  const js = jetstream(nc);
  return async (m: JsMsg, r: Reject): Promise<void> => {
    const gw = subjectTokens(s.prefix, m.subject)[1] ?? "unknown";
    const letter: DeadLetter = { subject: m.subject, reason: r.reason, payload: r.payload };
    const safeGw = /^[A-Za-z0-9_-]{1,64}$/.test(gw) ? gw : "_invalid";
    await js.publish(s.dlq(safeGw), JSON.stringify(letter), { msgID: `dlq:${m.info.stream}:${m.seq}:${r.part}` });
    onLetter?.(r.code);
  };
}
