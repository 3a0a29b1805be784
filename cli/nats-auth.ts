import { createHmac } from "node:crypto";
import { prefixPattern, subjects } from "../contracts/index.ts";

/**
 * NATS server authorization generated from the registry (issue 4, point 5: isolation at the
 * broker). One user for the platform's own services, one per franchisee (`fr-<id>`) and one per
 * gateway (`gw-<id>`), each allowed exactly its own subjects. docs/operations.md, "NATS
 * authorization", is the operator's side of this.
 */

export type NatsCredentialKind = "franchisee" | "gateway" | "platform";

export interface NatsCredential {
  kind: NatsCredentialKind;
  id: string;
  user: string;
  password: string;
}

export interface NatsAuthInput {
  prefix: string;
  franchisees: string[];
  gateways: string[];
  /** The secret the franchisees' and gateways' passwords derive from (VEND_NATS_SECRET). */
  secret: string;
  /** The platform user's password (VEND_NATS_PASSWORD). */
  platformPassword: string;
  /**
   * Also let each franchisee read its fault history from the faults stream with the one consumer
   * its permissions pin (name `fr-<id>`, filter `<p>.fault.<id>.*`). Off by default: the server
   * checks neither a push consumer's deliver subject nor a request's reply subject, so this grant
   * lets a franchisee have its own faults delivered to any subject (docs/operations.md).
   */
  franchiseeHistory?: boolean;
}

export const NATS_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const PLATFORM_USER = "platform";
const MIN_SECRET = 16;

export const natsUser = (kind: Exclude<NatsCredentialKind, "platform">, id: string): string => `${kind === "franchisee" ? "fr" : "gw"}-${id}`;

/**
 * The inbox prefix a franchisee or gateway connection must use (nats.js `inboxPrefix`): replies
 * (JetStream acks, API answers, pulled messages) come to `<inboxPrefix>.…`, and each user may
 * subscribe to its own inboxes only. A shared `_INBOX.>` would let any of them read every reply on
 * the server, the platform's pulls of other tenants' data included. Default inboxes are
 * `_INBOX.<nuid>`, and a nuid never contains `-`, so no other client's inbox starts like these.
 */
export const natsInboxPrefix = (user: string): string => `_INBOX.${user}`;

/**
 * The one JetStream consumer a franchisee may create on the faults stream to read its history:
 * its name and filter are pinned by the permissions, so it can neither read another franchisee's
 * subjects nor pull from (or reconfigure) any other consumer of the stream.
 */
export const franchiseeHistoryConsumer = (franchiseeId: string): string => natsUser("franchisee", franchiseeId);

/** base64url(HMAC-SHA256(secret, "<kind>:<id>")), 32 characters: re-derivable, never stored. */
export function derivedNatsPassword(secret: string, kind: Exclude<NatsCredentialKind, "platform">, id: string): string {
  return createHmac("sha256", secret).update(`${kind}:${id}`).digest("base64url").slice(0, 32);
}

interface UserBlock {
  user: string;
  password: string;
  publish: string[];
  subscribe: string[];
  comment: string;
}

/** A double-quoted string of the nats-server configuration language. */
function q(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function validateIds(kind: string, ids: string[]): void {
  const seen = new Set<string>();
  for (const id of ids) {
    if (typeof id !== "string" || !NATS_ID_PATTERN.test(id))
      throw new Error(`invalid ${kind} id ${JSON.stringify(id)}: ids must match ${NATS_ID_PATTERN} to be used as NATS subject tokens`);
    if (seen.has(id)) throw new Error(`duplicate ${kind} id ${JSON.stringify(id)}`);
    seen.add(id);
  }
}

/** Builds the `authorization { users: [...] }` block for nats-server 2.9+ and the credentials to hand out. Pure. */
export function natsAuthorization(input: NatsAuthInput): { config: string; credentials: NatsCredential[] } {
  const { prefix, franchisees, gateways, secret, platformPassword } = input;
  if (!prefixPattern.test(prefix)) throw new Error(`invalid prefix ${JSON.stringify(prefix)}: must match ${prefixPattern}`);
  validateIds("franchisee", franchisees);
  validateIds("gateway", gateways);
  if (typeof secret !== "string" || secret.length < MIN_SECRET) throw new Error(`the NATS secret must be at least ${MIN_SECRET} characters`);
  if (typeof platformPassword !== "string" || platformPassword.length < MIN_SECRET)
    throw new Error(`the platform's NATS password must be at least ${MIN_SECRET} characters`);
  // nats-server reads a password that starts like a bcrypt hash as one.
  if (/^\$2[aby]?\$/.test(platformPassword)) throw new Error("the platform's NATS password must not start with $2 (nats-server would take it for a bcrypt hash)");
  if (/[\u0000-\u001f\u007f]/.test(platformPassword)) throw new Error("the platform's NATS password must not contain control characters");

  const s = subjects(prefix);
  const faults = s.streams.faults;
  const users: UserBlock[] = [];
  const credentials: NatsCredential[] = [];

  users.push({ user: PLATFORM_USER, password: platformPassword, publish: [">"], subscribe: [">"], comment: "the platform's own services" });
  credentials.push({ kind: "platform", id: PLATFORM_USER, user: PLATFORM_USER, password: platformPassword });

  for (const f of franchisees) {
    const user = natsUser("franchisee", f);
    const password = derivedNatsPassword(secret, "franchisee", f);
    const own = `${prefix}.fault.${f}`;
    const consumer = franchiseeHistoryConsumer(f);
    users.push({
      user,
      password,
      comment: `franchisee ${f}: its own faults and daily packages${input.franchiseeHistory ? ` (and their history through its one consumer on ${faults})` : ""}`,
      subscribe: [`${own}.>`, s.pkg(f), `${natsInboxPrefix(user)}.>`],
      publish: input.franchiseeHistory
        ? [
            // Only the create form that carries the filter in the subject: the server refuses a
            // request whose filter differs from it, or whose durable name differs from the
            // subject's name (and a differing `name` is ignored: the subject's wins).
            `$JS.API.CONSUMER.CREATE.${faults}.${consumer}.${own}.>`,
            `$JS.API.CONSUMER.INFO.${faults}.${consumer}`,
            `$JS.API.CONSUMER.MSG.NEXT.${faults}.${consumer}`,
            `$JS.API.CONSUMER.DELETE.${faults}.${consumer}`,
            `$JS.ACK.${faults}.${consumer}.>`,
          ]
        : // Nothing: live faults only; the history is the HTTP API's (GET /v1/franchisee/faults).
          [],
    });
    credentials.push({ kind: "franchisee", id: f, user, password });
  }

  for (const g of gateways) {
    const user = natsUser("gateway", g);
    const password = derivedNatsPassword(secret, "gateway", g);
    users.push({
      user,
      password,
      comment: `gateway ${g}: publishes its telemetry and events, receives its commands`,
      publish: [`${prefix}.tel.${g}.*`, `${prefix}.telb.${g}`, `${prefix}.evt.${g}.*`],
      // MQTT's `<p>/cmd/<g>/#` also subscribes to the parent level `<p>.cmd.<g>`, and refuses the
      // whole subscription when that is not allowed. JetStream publish acks come back to the
      // connection's inbox.
      subscribe: [`${prefix}.cmd.${g}`, `${prefix}.cmd.${g}.>`, `${natsInboxPrefix(user)}.>`],
    });
    credentials.push({ kind: "gateway", id: g, user, password });
  }

  const list = (xs: string[]) => `[${xs.map(q).join(", ")}]`;
  // An empty allow list is no restriction at all to nats-server: nothing allowed is a deny of all.
  const rule = (xs: string[]) => (xs.length ? `{ allow: ${list(xs)} }` : `{ deny: [">"] }`);
  const lines = [
    `# NATS authorization for the Voltvend platform with prefix ${q(prefix)}: ${franchisees.length} franchisee(s), ${gateways.length} gateway(s).`,
    "# Generated by `npm run nats:config` from the registry; do not edit. It holds passwords: keep it private.",
    "authorization {",
    "  users: [",
    ...users.flatMap((u) => [
      `    # ${u.comment}`,
      "    {",
      `      user: ${q(u.user)}`,
      `      password: ${q(u.password)}`,
      "      permissions: {",
      `        publish: ${rule(u.publish)}`,
      `        subscribe: ${rule(u.subscribe)}`,
      "      }",
      "    }",
    ]),
    "  ]",
    "}",
    "",
  ];
  return { config: lines.join("\n"), credentials };
}
