import pg from "pg";
import { parseDatabaseUrl } from "../contracts/index.ts";

/** How long a probe of one host may take before that host counts as down. */
const PROBE_TIMEOUT_MS = 2000;

/** An error the outage classifier (ingest/outage.ts) takes for a database that cannot be reached. */
export class NoPrimaryError extends Error {
  override name = "NoPrimaryError";
  /** sqlclient_unable_to_establish_sqlconnection: class 08, the database is unavailable. */
  readonly code = "08001";
}

/** A connection that reached a server which takes no writes (a standby, or a demoted primary). */
export class ReadOnlyServerError extends Error {
  override name = "ReadOnlyServerError";
  /** read_only_sql_transaction, what the server itself says to a write there. */
  readonly code = "25006";
}

/**
 * Whether a host answers and is in a role: `primary`, it takes writes (`transaction_read_only`
 * is off); `standby`, it is in recovery, where reports may read (READ_DATABASE_URL,
 * `target_session_attrs=prefer-standby`). A database not created yet (the first start migrates
 * it into being) is probed through `postgres`.
 */
async function hostIs(role: "primary" | "standby", url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: PROBE_TIMEOUT_MS });
  c.on("error", () => {});
  try {
    await c.connect();
    const r = await c.query<{ standby: boolean; read_only: string }>(
      "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS read_only",
    );
    const row = r.rows[0];
    return role === "primary" ? row?.read_only === "off" : row?.standby === true;
  } catch (e) {
    const u = new URL(url);
    if ((e as { code?: string }).code !== "3D000" || u.pathname === "/postgres") return false;
    u.pathname = "/postgres";
    return hostIs(role, u.toString());
  } finally {
    await c.end().catch(() => {});
  }
}
const isPrimary = (url: string) => hostIs("primary", url);
const isStandby = (url: string) => hostIs("standby", url);

/** How a resolver asks a host its role; the real probes connect, a unit test passes its own. */
export interface HostProbes {
  isPrimary(url: string): Promise<boolean>;
  isStandby(url: string): Promise<boolean>;
}
const realProbes: HostProbes = { isPrimary, isStandby };

export interface PrimaryResolver {
  /** How many hosts DATABASE_URL lists. */
  hosts: number;
  /** The URL of the current primary: the one found last, or probed for now. */
  primaryUrl(): Promise<string>;
  /** Forgets the primary found last (its connection died or it took no writes): the next connection probes again. */
  forget(url?: string): void;
}

/**
 * Finds the primary among DATABASE_URL's hosts the way libpq's `target_session_attrs=read-write`
 * does: every host is probed (at once, not in turn, so that a host that does not answer costs
 * one timeout, not one each) and the first in the list that takes writes wins. The answer is kept
 * until a connection to it fails; one host is used as it is, with no probe.
 */
export function primaryResolver(databaseUrl: string): PrimaryResolver {
  const parsed = parseDatabaseUrl(databaseUrl);
  const urls = parsed.hosts.map((_, i) => parsed.urlFor(i));
  let known: string | null = urls.length === 1 ? urls[0]! : null;
  let probing: Promise<string> | null = null;
  return {
    hosts: urls.length,
    primaryUrl() {
      if (known) return Promise.resolve(known);
      probing ??= (async () => {
        try {
          const answers = await Promise.all(urls.map(isPrimary));
          const i = answers.indexOf(true);
          if (i < 0) throw new NoPrimaryError(`no primary among the ${urls.length} database hosts (a failover may be under way)`);
          known = urls[i]!;
          return known;
        } finally {
          probing = null;
        }
      })();
      return probing;
    },
    forget(url) {
      if (urls.length > 1 && (url === undefined || url === known)) known = null;
    },
  };
}

/**
 * How long a read resolver keeps the host it found (a standby, or the primary it fell back to)
 * before it asks the hosts again: a standby may have been promoted since (a failover), and the old
 * primary may be back as the standby.
 */
export const STANDBY_RECHECK_MS = 30_000;

/**
 * Finds where reports read among READ_DATABASE_URL's hosts, as libpq's
 * `target_session_attrs=prefer-standby`: the first standby in the list; when none answers (the
 * standby is down or was just promoted), any host that answers (the primary). Either answer is
 * kept for STANDBY_RECHECK_MS, then the hosts are asked again at the next connection (the read
 * pool's connections are renewed, READ_POOL_LIFETIME_S, so that there is one). Same interface as
 * the primary's resolver, so the pool's clients come from the same class (without the
 * takes-writes check).
 */
export function standbyResolver(readUrl: string, clock: () => number = Date.now, probes: HostProbes = realProbes): PrimaryResolver {
  const parsed = parseDatabaseUrl(readUrl);
  const urls = parsed.hosts.map((_, i) => parsed.urlFor(i));
  let known: { url: string; at: number } | null = null;
  let probing: Promise<string> | null = null;
  return {
    hosts: urls.length,
    primaryUrl() {
      if (urls.length === 1) return Promise.resolve(urls[0]!);
      if (known && clock() - known.at < STANDBY_RECHECK_MS) return Promise.resolve(known.url);
      probing ??= (async () => {
        try {
          const standby = await Promise.all(urls.map((u) => probes.isStandby(u)));
          let i = standby.indexOf(true);
          if (i >= 0) known = { url: urls[i]!, at: clock() };
          else {
            i = (await Promise.all(urls.map((u) => probes.isPrimary(u)))).indexOf(true);
            if (i < 0) throw new NoPrimaryError(`no host of READ_DATABASE_URL answers (${urls.length} listed)`);
            known = { url: urls[i]!, at: clock() };
          }
          return known.url;
        } finally {
          probing = null;
        }
      })();
      return probing;
    },
    forget(url) {
      if (urls.length > 1 && (url === undefined || url === known?.url)) known = null;
    },
  };
}

/** The primary's URL, waiting up to `ms` while there is none (a failover under way at start). */
export async function waitForPrimary(resolver: PrimaryResolver, ms = 60_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await resolver.primaryUrl();
    } catch (e) {
      if (!(e instanceof NoPrimaryError) || Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * A pg.Client for the pool that connects to the current primary: it asks the resolver where that
 * is, connects there, and checks that the server takes writes (a node demoted since it was found
 * does not). A connection that fails or dies makes the resolver probe again, so that after a
 * failover the pool's next connections go to the new primary; the dead ones the pool drops.
 */
export function primaryClientClass(resolver: PrimaryResolver, o: { writes: boolean } = { writes: true }): typeof pg.Client {
  return class PrimaryClient extends pg.Client {
    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
      const done = this.connectToPrimary().then(() => this as pg.Client);
      if (!callback) return done;
      done.then(
        (c) => (callback as (err: null, c: pg.Client) => void)(null, c),
        (e: Error) => (callback as (err: Error) => void)(e),
      );
    }

    private async connectToPrimary(): Promise<void> {
      const url = await resolver.primaryUrl();
      const u = new URL(url);
      const self = this as unknown as { host: string; port: number; connectionParameters: { host: string; port: number } };
      self.host = self.connectionParameters.host = u.hostname;
      self.port = self.connectionParameters.port = Number(u.port || 5432);
      this.on("error", () => resolver.forget(url));
      try {
        await super.connect();
      } catch (e) {
        resolver.forget(url);
        throw e;
      }
      if (o.writes && resolver.hosts > 1) {
        const r = await this.query<{ transaction_read_only: string }>("SHOW transaction_read_only");
        if (r.rows[0]?.transaction_read_only !== "off") {
          resolver.forget(url);
          await this.end().catch(() => {});
          throw new ReadOnlyServerError(`${u.host} takes no writes (no longer the primary)`);
        }
      }
    }
  };
}
