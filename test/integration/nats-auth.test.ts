import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, PermissionViolationError, type NatsConnection, type Status } from "@nats-io/transport-node";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { derivedNatsPassword, natsInboxPrefix, natsUser, writeNatsConfig, type NatsConfigResult } from "../../cli/index.ts";
import { subjects } from "../../contracts/index.ts";
import { pgPool, testDatabase } from "../helpers/database.ts";
import { rand, testPrefix } from "../helpers/env.ts";
import { natsServer, type TestNatsServer } from "../helpers/nats-server.ts";

// The authorization `npm run nats:config` generates from the registry, loaded by a nats-server of
// the test's own, and every tenant's credentials tried against it: each sees and sends its own
// subjects only, and the server itself refuses the rest.

const SECRET = "nats-secret-0123456789abcdef";
// Quoting is part of what is tested: `$` (a variable to nats-server when unquoted), `"` and `\`.
const PLATFORM_PASSWORD = 'pl$tform"pass\\word-0123456789';
const prefix = testPrefix();
const s = subjects(prefix);

let db: Awaited<ReturnType<typeof testDatabase>>;
let dir: string;
let written: NatsConfigResult;
let writtenHistory: NatsConfigResult;
let server: TestNatsServer; // the default authorization, with MQTT
let historyServer: TestNatsServer; // the authorization with franchisees' JetStream history
const open: NatsConnection[] = [];

beforeAll(async () => {
  db = await testDatabase();
  {
    await using pool = pgPool(db.url, 1);
    await pool.query("INSERT INTO regions (region_id, name, timezone) VALUES ('R1', 'Region 1', 'Asia/Shanghai')");
    await pool.query("INSERT INTO franchisees (franchisee_id, name) VALUES ('FR1', 'Franchisee 1'), ('FR2', 'Franchisee 2')");
    await pool.query("INSERT INTO gateways (gateway_id, region_id) VALUES ('G1', 'R1'), ('G2', 'R1')");
    // Retired (issue 13): they have ended, so they get no NATS user.
    await pool.query("INSERT INTO franchisees (franchisee_id, name, retired_at) VALUES ('FR9', 'Franchisee 9', now())");
    await pool.query("INSERT INTO gateways (gateway_id, region_id, retired_at) VALUES ('G9', 'R1', now())");
    dir = mkdtempSync(join(tmpdir(), "vv-natsauth-"));
    const common = { prefix, secret: SECRET, platformPassword: PLATFORM_PASSWORD };
    written = await writeNatsConfig(db.url, { ...common, out: join(dir, "auth.conf") });
    writtenHistory = await writeNatsConfig(pool, { ...common, out: join(dir, "auth-history.conf"), franchiseeHistory: true });
  }
  server = await natsServer({ mqtt: true, include: [written.out] });
  historyServer = await natsServer({ include: [writtenHistory.out] });
});

afterAll(async () => {
  await Promise.all(open.map((nc) => nc.close().catch(() => {})));
  await server?.stop();
  await historyServer?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  await db?.[Symbol.asyncDispose]();
});

/** The rows of the credentials CSV (fields may be quoted, `""` inside for `"`). */
function readCredentials(file: string): Record<string, string>[] {
  const [head, ...rows] = readFileSync(file, "utf8").trimEnd().split("\n");
  const split = (line: string) => [...line.matchAll(/(?:^|,)("(?:[^"]|"")*"|[^,]*)/g)].map((m) => (m[1]!.startsWith('"') ? m[1]!.slice(1, -1).replace(/""/g, '"') : m[1]!));
  const cols = split(head!);
  return rows.map((r) => Object.fromEntries(split(r).map((v, i) => [cols[i]!, v])));
}

const password = (user: string, file = written.credentialsFile) => readCredentials(file).find((r) => r.user === user)!.password!;

interface Client {
  nc: NatsConnection;
  errors: Error[];
}

/** Connects as a user of the generated file, with its inbox prefix, recording the errors the server reports. */
async function as(user: string, o: { srv?: TestNatsServer; inboxPrefix?: string | null; file?: string } = {}): Promise<Client> {
  const inbox = o.inboxPrefix === undefined ? (user === "platform" ? undefined : natsInboxPrefix(user)) : (o.inboxPrefix ?? undefined);
  const nc = await connect({ servers: (o.srv ?? server).url, user, pass: password(user, o.file), reconnect: false, ...(inbox ? { inboxPrefix: inbox } : {}) });
  open.push(nc);
  const errors: Error[] = [];
  void (async () => {
    for await (const st of nc.status() as AsyncIterable<Status>) if (st.type === "error") errors.push(st.error);
  })();
  return { nc, errors };
}

const violation = (c: Client, operation: "publish" | "subscription", subject: string) =>
  c.errors.find((e) => e instanceof PermissionViolationError && e.operation === operation && e.subject === subject);

async function waitFor<T>(fn: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`not seen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Collects what a subscription receives. */
function collect(nc: NatsConnection, subject: string): string[] {
  const got: string[] = [];
  nc.subscribe(subject, { callback: (err, m) => void (err || got.push(`${m.subject} ${m.string()}`)) });
  return got;
}

describe("nats-config", () => {
  it("writes an include file and a credentials CSV (mode 0600) from the registry (retired ones left out), with derived passwords", async () => {
    expect(written).toMatchObject({ franchisees: 2, gateways: 2 });
    for (const f of [written.out, written.credentialsFile]) expect(statSync(f).mode & 0o777).toBe(0o600);
    const rows = readCredentials(written.credentialsFile);
    expect(rows).toEqual([
      { kind: "platform", id: "platform", user: "platform", password: PLATFORM_PASSWORD, inbox_prefix: "_INBOX" },
      ...(["FR1", "FR2"] as const).map((id) => ({ kind: "franchisee", id, user: `fr-${id}`, password: derivedNatsPassword(SECRET, "franchisee", id), inbox_prefix: `_INBOX.fr-${id}` })),
      ...(["G1", "G2"] as const).map((id) => ({ kind: "gateway", id, user: `gw-${id}`, password: derivedNatsPassword(SECRET, "gateway", id), inbox_prefix: `_INBOX.gw-${id}` })),
    ]);
    expect(rows.find((r) => r.user === "fr-FR1")!.password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    // Every subject of every permission is quoted.
    const conf = readFileSync(written.out, "utf8");
    const lists = [...conf.matchAll(/(?:allow|deny): \[(.*)\]/g)].map((m) => m[1]!);
    expect(lists.length).toBe(10);
    for (const l of lists) expect(l).toMatch(/^"[^"]+"(, "[^"]+")*$/);
    // Deterministic: regenerated from the same registry and secret, the same file.
    const again = await writeNatsConfig(db.url, { prefix, secret: SECRET, platformPassword: PLATFORM_PASSWORD, out: join(dir, "again.conf") });
    expect(readFileSync(again.out, "utf8")).toBe(conf);
  });

  it("refuses ids that are not subject tokens and a missing or short secret", async () => {
    const { natsAuthorization } = await import("../../cli/index.ts");
    const ok = { prefix, franchisees: ["FR1"], gateways: ["G1"], secret: SECRET, platformPassword: PLATFORM_PASSWORD };
    expect(() => natsAuthorization({ ...ok, gateways: ["G.1"] })).toThrow(/invalid gateway id "G\.1"/);
    expect(() => natsAuthorization({ ...ok, franchisees: ["F>"] })).toThrow(/invalid franchisee id/);
    expect(() => natsAuthorization({ ...ok, franchisees: [""] })).toThrow(/invalid franchisee id/);
    expect(() => natsAuthorization({ ...ok, secret: "short" })).toThrow(/secret must be at least 16/);
    expect(() => natsAuthorization({ ...ok, platformPassword: "$2a$10$abcdefghijklmnopqrstuv" })).toThrow(/bcrypt/);
  });
});

describe("the server with the generated authorization", () => {
  it("refuses a wrong password, another user's password and no credentials at connect", async () => {
    const attempt = (user?: string, pass?: string) => connect({ servers: server.url, reconnect: false, ...(user ? { user, ...(pass !== undefined ? { pass } : {}) } : {}) });
    await expect(attempt("fr-FR1", "wrong-password-0123456789abcdef")).rejects.toThrow(/Authorization Violation/);
    await expect(attempt("fr-FR2", password("fr-FR1"))).rejects.toThrow(/Authorization Violation/);
    await expect(attempt("gw-G1", derivedNatsPassword("another-secret-0123456789", "gateway", "G1"))).rejects.toThrow(/Authorization Violation/);
    await expect(attempt("platform", "not-the-platform-password")).rejects.toThrow(/Authorization Violation/);
    await expect(attempt()).rejects.toThrow(/Authorization Violation/);
    // The right ones get in (the platform's password through every quoting layer).
    for (const u of ["platform", "fr-FR1", "gw-G2"]) await (await as(u)).nc.flush();
  });

  it("lets a franchisee receive its own faults and nothing of another's", async () => {
    const platform = await as("platform");
    const fr1 = await as("fr-FR1");
    const own = collect(fr1.nc, s.fault("FR1", "T1"));
    const ownAll = collect(fr1.nc, `${prefix}.fault.FR1.>`);
    // Another franchisee's subjects, every fault, and everyone's replies: refused by the server.
    const refused = [`${prefix}.fault.FR2.>`, s.fault("FR2", "T9"), `${prefix}.fault.*.T1`, `${prefix}.fault.>`, `${prefix}.>`, "_INBOX.>", ">"];
    const closed = refused.map((subject) => fr1.nc.subscribe(subject).closed);
    await fr1.nc.flush();
    for (const [i, subject] of refused.entries()) {
      const err = await closed[i];
      expect(err, subject).toBeInstanceOf(PermissionViolationError);
      expect(err).toMatchObject({ operation: "subscription", subject });
      await waitFor(() => violation(fr1, "subscription", subject));
    }

    // Everything reaching the connection is counted, subscribed or not: the FR2 fault published
    // first never arrives, the FR1 one published after it does.
    const before = fr1.nc.stats().inMsgs;
    platform.nc.publish(s.fault("FR2", "T9"), "fault of FR2");
    platform.nc.publish(s.fault("FR1", "T1"), "fault of FR1");
    await waitFor(() => own.length === 1 && ownAll.length === 1);
    await fr1.nc.flush();
    expect(own).toEqual([`${s.fault("FR1", "T1")} fault of FR1`]);
    expect(ownAll).toEqual(own);
    expect(fr1.nc.stats().inMsgs - before).toBe(2); // the two deliveries of the one FR1 fault

    // It may publish nothing: not a fault, not a command, not the JetStream API (history is the HTTP API's).
    const watch = collect(platform.nc, ">");
    await platform.nc.flush();
    for (const subject of [s.fault("FR1", "T1"), s.cmd("G1", "T1"), `$JS.API.CONSUMER.CREATE.${s.streams.faults}.fr-FR1.${prefix}.fault.FR1.*`, "$JS.API.INFO"]) {
      fr1.nc.publish(subject, "x");
      await waitFor(() => violation(fr1, "publish", subject));
    }
    await fr1.nc.flush();
    await platform.nc.flush();
    expect(watch.filter((m) => !m.startsWith("_INBOX"))).toEqual([]);
  });

  it("lets a franchisee receive its own daily package and not another's", async () => {
    const platform = await as("platform");
    const fr1 = await as("fr-FR1");
    const own = collect(fr1.nc, s.pkg("FR1"));
    const refused = [s.pkg("FR2"), s.wild.pkg, `${prefix}.pkg.>`];
    const closed = refused.map((subject) => fr1.nc.subscribe(subject).closed);
    await fr1.nc.flush();
    for (const [i, subject] of refused.entries()) expect(await closed[i], subject).toBeInstanceOf(PermissionViolationError);
    platform.nc.publish(s.pkg("FR2"), "package of FR2");
    platform.nc.publish(s.pkg("FR1"), "package of FR1");
    await waitFor(() => own.length === 1);
    await fr1.nc.flush();
    expect(own).toEqual([`${s.pkg("FR1")} package of FR1`]);
  });

  it("lets a gateway publish its own telemetry and events only, and receive its own commands only", async () => {
    const platform = await as("platform");
    const g1 = await as("gw-G1");
    const up = collect(platform.nc, `${prefix}.>`);
    await platform.nc.flush();

    g1.nc.publish(s.tel("G2", "T1"), "reading as G2");
    const forbidden = [s.telBatch("G2"), s.evt("G2", "T1"), s.fault("FR1", "T1"), s.cmd("G2", "T1"), s.cutoff("T1"), s.dlq("G1")];
    for (const subject of forbidden) g1.nc.publish(subject, "x");
    g1.nc.publish(s.tel("G1", "T1"), "reading");
    g1.nc.publish(s.telBatch("G1"), "batch");
    g1.nc.publish(s.evt("G1", "T1"), "event");
    await g1.nc.flush();
    await waitFor(() => up.length >= 3);
    await platform.nc.flush();
    expect(up).toEqual([`${s.tel("G1", "T1")} reading`, `${s.telBatch("G1")} batch`, `${s.evt("G1", "T1")} event`]);
    for (const subject of [s.tel("G2", "T1"), ...forbidden]) expect(violation(g1, "publish", subject), subject).toBeTruthy();

    // Commands: its own arrive; another gateway's cannot even be subscribed to.
    const cmds = collect(g1.nc, `${prefix}.cmd.G1.>`);
    const refused = [`${prefix}.cmd.G2.>`, s.cmd("G2", "T1"), `${prefix}.cmd.*.T1`, `${prefix}.cmd.>`, `${prefix}.tel.G1.T1`, "_INBOX.>"];
    const closed = refused.map((subject) => g1.nc.subscribe(subject).closed);
    await g1.nc.flush();
    for (const [i, subject] of refused.entries()) expect(await closed[i], subject).toBeInstanceOf(PermissionViolationError);
    const before = g1.nc.stats().inMsgs;
    platform.nc.publish(s.cmd("G2", "T1"), "command for G2");
    platform.nc.publish(s.cmd("G1", "T1"), "command for G1");
    await waitFor(() => cmds.length === 1);
    await g1.nc.flush();
    expect(cmds).toEqual([`${s.cmd("G1", "T1")} command for G1`]);
    expect(g1.nc.stats().inMsgs - before).toBe(1);
  });

  it("lets a gateway publish through JetStream with its own inbox prefix, and only with it", async () => {
    const platform = await as("platform");
    const jsm = await jetstreamManager(platform.nc);
    await jsm.streams.add({ name: s.streams.telemetry, subjects: [s.wild.tel, s.wild.telBatch] });
    const g1 = await as("gw-G1");
    const ack = await jetstream(g1.nc).publish(s.tel("G1", "T1"), JSON.stringify({ ts: 1 }), { msgID: "T1:1" });
    expect(ack).toMatchObject({ stream: s.streams.telemetry, seq: 1 });
    await expect(jetstream(g1.nc).publish(s.tel("G2", "T1"), "{}", { timeout: 2000 })).rejects.toThrow(/Permissions Violation for Publish/);
    // The default inbox (`_INBOX.<nuid>`) is another's to read: the ack cannot come back there.
    const plain = await as("gw-G1", { inboxPrefix: null });
    await expect(jetstream(plain.nc).publish(s.tel("G1", "T1"), "{}", { timeout: 2000 })).rejects.toThrow(/Permissions Violation for Subscription to "_INBOX\./);
    // Whatever reached the stream came from G1's own subject: nothing was stored as G2.
    const asG2 = await jsm.streams.getMessage(s.streams.telemetry, { last_by_subj: s.tel("G2", "T1") }).catch(() => null);
    expect(asG2).toBeNull();
  });

  it("applies the same permissions to gateways over MQTT (commands at QoS 0)", async () => {
    const platform = await as("platform");
    const up = collect(platform.nc, `${prefix}.tel.>`);
    await platform.nc.flush();
    const slash = (subject: string) => subject.replaceAll(".", "/");
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, {
      protocolVersion: 4,
      clientId: `gw-G1-${rand()}`,
      username: "gw-G1",
      password: password("gw-G1"),
      clean: true,
      reconnectPeriod: 0,
    });
    try {
      const got: string[] = [];
      client.on("message", (topic, payload) => got.push(`${topic} ${payload.toString()}`));
      expect(await client.subscribeAsync(slash(`${prefix}.cmd.G1.#`), { qos: 0 })).toMatchObject([{ qos: 0 }]);
      await expect(client.subscribeAsync(slash(`${prefix}.cmd.G2.#`), { qos: 0 })).rejects.toMatchObject({ packet: { granted: [128] } });
      platform.nc.publish(s.cmd("G2", "T1"), "command for G2");
      platform.nc.publish(s.cmd("G1", "T1"), "command for G1");
      await waitFor(() => got.length >= 1);
      // The server acknowledges a QoS 1 publish it refuses, and drops it.
      await client.publishAsync(slash(s.tel("G2", "T1")), "reading as G2", { qos: 1 });
      await client.publishAsync(slash(s.tel("G1", "T1")), "reading", { qos: 1 });
      await waitFor(() => up.length >= 1);
      await platform.nc.flush();
      expect(got).toEqual([`${slash(s.cmd("G1", "T1"))} command for G1`]);
      expect(up).toEqual([`${s.tel("G1", "T1")} reading`]);
    } finally {
      await client.endAsync(true);
    }
  });
});

describe("with franchisees' JetStream history (--franchisee-history)", () => {
  it("reads its own fault history through its one pinned consumer, and can neither widen it nor use another", async () => {
    const platform = await as("platform", { srv: historyServer, file: writtenHistory.credentialsFile });
    const jsm = await jetstreamManager(platform.nc);
    await jsm.streams.add({ name: s.streams.faults, subjects: [s.wild.fault] });
    // A platform consumer of every fault (like the backup's): not to be pulled from by a franchisee.
    const backup = s.consumer("backup_faults");
    await jsm.consumers.add(s.streams.faults, { durable_name: backup, ack_policy: AckPolicy.Explicit });
    const js = jetstream(platform.nc);
    await js.publish(s.fault("FR1", "T1"), "FR1 first");
    await js.publish(s.fault("FR2", "T9"), "FR2 only");
    await js.publish(s.fault("FR1", "T2"), "FR1 second");

    const fr1 = await as(natsUser("franchisee", "FR1"), { srv: historyServer, file: writtenHistory.credentialsFile });
    const name = "fr-FR1";
    const fjsm = await jetstreamManager(fr1.nc, { checkAPI: false });
    await fjsm.consumers.add(s.streams.faults, {
      name,
      filter_subject: `${prefix}.fault.FR1.*`,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
      inactive_threshold: 60_000_000_000,
    });
    const c = await jetstream(fr1.nc).consumers.get(s.streams.faults, name);
    const history: string[] = [];
    for await (const m of await c.fetch({ max_messages: 10, expires: 1000 })) history.push(`${m.subject} ${m.string()}`);
    expect(history).toEqual([`${s.fault("FR1", "T1")} FR1 first`, `${s.fault("FR1", "T2")} FR1 second`]);

    const create = (subject: string, config: object) => fr1.nc.request(subject, JSON.stringify({ stream_name: s.streams.faults, config }), { timeout: 2000 }).then((m) => m.json<{ error?: { err_code: number } }>());
    const pinned = `$JS.API.CONSUMER.CREATE.${s.streams.faults}.${name}.${prefix}.fault.FR1.*`;
    // The server holds the request to the filter in the subject...
    expect(await create(pinned, { name, filter_subject: `${prefix}.fault.*.*`, ack_policy: "none" })).toMatchObject({ error: { err_code: 10131 } });
    expect(await create(pinned, { name, ack_policy: "none" })).toMatchObject({ error: { err_code: 10131 } });
    // ...and to the name in the subject (a durable name must equal it: no reconfiguring the platform's).
    expect(await create(pinned, { durable_name: backup, filter_subject: `${prefix}.fault.FR1.*`, ack_policy: "none" })).toMatchObject({ error: { err_code: 10017 } });
    // The permissions refuse every other form, name, filter and API.
    for (const subject of [
      `$JS.API.CONSUMER.CREATE.${s.streams.faults}.${name}.${prefix}.fault.FR2.*`,
      `$JS.API.CONSUMER.CREATE.${s.streams.faults}.${name}.${prefix}.fault.*.*`,
      `$JS.API.CONSUMER.CREATE.${s.streams.faults}.${name}`,
      `$JS.API.CONSUMER.CREATE.${s.streams.faults}`,
      `$JS.API.CONSUMER.CREATE.${s.streams.faults}.other.${prefix}.fault.FR1.*`,
      `$JS.API.CONSUMER.DURABLE.CREATE.${s.streams.faults}.${name}`,
      `$JS.API.CONSUMER.MSG.NEXT.${s.streams.faults}.${backup}`,
      `$JS.API.CONSUMER.INFO.${s.streams.faults}.${backup}`,
      `$JS.API.STREAM.INFO.${s.streams.faults}`,
      `$JS.API.DIRECT.GET.${s.streams.faults}`,
      `$JS.API.STREAM.MSG.GET.${s.streams.faults}`,
    ]) {
      await expect(create(subject, { name, filter_subject: `${prefix}.fault.FR1.*`, ack_policy: "none" }), subject).rejects.toThrow(/Permissions Violation for Publish/);
    }
    // The platform's consumer is untouched and still has every fault to deliver.
    expect(await jsm.consumers.info(s.streams.faults, backup)).toMatchObject({ num_pending: 3, config: { durable_name: backup } });
    await fjsm.consumers.delete(s.streams.faults, name);

    // FR2's credentials cannot touch FR1's consumer.
    const fr2 = await as("fr-FR2", { srv: historyServer, file: writtenHistory.credentialsFile });
    await expect(fr2.nc.request(`$JS.API.CONSUMER.INFO.${s.streams.faults}.${name}`, "", { timeout: 2000 })).rejects.toThrow(/Permissions Violation for Publish/);
  });
});

describe("the platform on a server with the generated authorization", () => {
  it("logs in as platform when VEND_NATS_PASSWORD is set, and cannot start without it", async () => {
    const { testPlatform } = await import("../helpers/platform.ts");
    {
      await using tp = await testPlatform({ NATS_URL: server.url, VEND_NATS_PASSWORD: PLATFORM_PASSWORD }, { parts: { cutoff: false, faults: false, writer: false } });
      const ready = await fetch(`${tp.p.url}/readyz`);
      expect(ready.status).toBe(200);
      // It created its streams on this server, as the platform user.
      const jsm = await jetstreamManager(tp.p.nc);
      expect((await jsm.streams.info(tp.p.subjects.streams.telemetry)).config.name).toBe(tp.p.subjects.streams.telemetry);
    }
    await expect(testPlatform({ NATS_URL: server.url }, { parts: { cutoff: false, faults: false, writer: false } })).rejects.toThrow(/Authorization/i);
  });
});
