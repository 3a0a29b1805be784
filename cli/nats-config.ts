import { chmodSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import pg from "pg";
import { natsAuthorization, natsInboxPrefix, type NatsCredential } from "./nats-auth.ts";

export interface NatsConfigOptions {
  prefix: string;
  secret: string;
  platformPassword: string;
  /** The include file to write; the credentials go to `<out>.credentials.csv`. */
  out: string;
  /** Let franchisees read their fault history over JetStream (see natsAuthorization). */
  franchiseeHistory?: boolean;
}

export interface NatsConfigResult {
  franchisees: number;
  gateways: number;
  out: string;
  credentialsFile: string;
}

/** Writes a file readable by its owner only, atomically (a server reload never sees half of it). */
function writePrivate(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600); // whatever the umask did
  renameSync(tmp, path);
}

const csvField = (v: string) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

function credentialsCsv(credentials: NatsCredential[]): string {
  const rows = [["kind", "id", "user", "password", "inbox_prefix"]];
  for (const c of credentials) rows.push([c.kind, c.id, c.user, c.password, c.kind === "platform" ? "_INBOX" : natsInboxPrefix(c.user)]);
  return rows.map((r) => r.map(csvField).join(",")).join("\n") + "\n";
}

/**
 * Reads the franchisees and gateways of the registry (those not retired) and writes the nats-server authorization
 * include file `out` and its credentials `<out>.credentials.csv` (both mode 0600: they hold
 * passwords). Returns what it wrote.
 */
export async function writeNatsConfig(db: pg.Pool | string, o: NatsConfigOptions): Promise<NatsConfigResult> {
  const pool = typeof db === "string" ? new pg.Pool({ connectionString: db, max: 1 }) : db;
  // An idle connection lost makes the pool emit 'error' (fatal unheard); the next query reports it.
  if (typeof db === "string") pool.on("error", () => {});
  let franchisees: string[];
  let gateways: string[];
  try {
    // A retired franchisee or gateway has ended: it gets no NATS user (its history stays in the registry).
    franchisees = (await pool.query<{ franchisee_id: string }>("SELECT franchisee_id FROM franchisees WHERE retired_at IS NULL ORDER BY franchisee_id COLLATE \"C\"")).rows.map((r) => r.franchisee_id);
    gateways = (await pool.query<{ gateway_id: string }>("SELECT gateway_id FROM gateways WHERE retired_at IS NULL ORDER BY gateway_id COLLATE \"C\"")).rows.map((r) => r.gateway_id);
  } finally {
    if (typeof db === "string") await pool.end();
  }
  const { config, credentials } = natsAuthorization({
    prefix: o.prefix,
    franchisees,
    gateways,
    secret: o.secret,
    platformPassword: o.platformPassword,
    ...(o.franchiseeHistory ? { franchiseeHistory: true } : {}),
  });
  const out = resolve(o.out);
  const credentialsFile = `${out}.credentials.csv`;
  mkdirSync(dirname(out), { recursive: true });
  writePrivate(out, config);
  writePrivate(credentialsFile, credentialsCsv(credentials));
  return { franchisees: franchisees.length, gateways: gateways.length, out, credentialsFile };
}
