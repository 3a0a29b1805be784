import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { OutboxRelayError, relayOutbox } from "./outbox.ts";
import { everyRound } from "./rounds.ts";
import { claimDue, expireCommand, expiredCommands, type Timing } from "./commands.ts";
import type { KV } from "@nats-io/kv";
import type { Db } from "./db.ts";
import type { Metrics } from "./metrics.ts";
import { checkArms } from "./sessions/arms-check.ts";
import { claimRound } from "./round-claims.ts";
import type { SessionService } from "./sessions/service.ts";

/**
 * Repeats due commands, ends those past their deadline, and relays the outbox. Every control instance runs one;
 * SKIP LOCKED claims make each repeat and each expiry happen once across instances, and share the
 * work among them. Its own slower round checks the arms bucket against the sessions: one instance
 * per interval, by a round claim (the repairs are compare-and-set under the session's lock besides,
 * so two instances would never undo each other). docs/operations.md, "Several control instances".
 */
export function startTicker(o: {
  db: Db;
  nc: NatsConnection;
  sessions: SessionService;
  arms: KV;
  clock: () => number;
  timing: Timing;
  everyMs: number;
  armsCheckMs: number;
  metrics: Metrics;
  log: Logger;
  /** This instance's name in round claims. */
  instance: string;
}) {
  const js = jetstream(o.nc);
  const once = async () => {
    const now = o.clock();
    for (const cmd of await claimDue(o.db, now, o.timing)) o.sessions.repeat(cmd);
    for (const cmd of await expiredCommands(o.db, now)) {
      await o.sessions.onCommandExpired(cmd, (tx) => expireCommand(tx, cmd.cmdId, now));
    }
    // Messages the server refused stay in the outbox (and are named); the rest went out, and the
    // round's other work (command repeats and expiries) must not back off because of them.
    try {
      while ((await relayOutbox(o.db, js)) === 200);
    } catch (err) {
      if (!(err instanceof OutboxRelayError)) throw err;
      o.log.warn({ err, failed: err.failed.length }, "outbox messages not published; kept for the next round");
    }
  };
  const rounds = everyRound(o.everyMs, once, { log: o.log, what: "command tick" });
  const armsRound = async () => {
    const r = await checkArms(o.db, o.arms, o.log);
    o.metrics.armsRepaired.inc({ change: "rearmed" }, r.rearmed);
    o.metrics.armsRepaired.inc({ change: "removed" }, r.removed);
  };
  // One instance per interval: it reads the whole arms bucket and every powered session, work that
  // does not divide by rows (control/round-claims.ts).
  const armsRounds = everyRound(
    o.armsCheckMs,
    async () => {
      if (await claimRound(o.db, "arms_check", o.armsCheckMs, o.instance)) await armsRound();
    },
    { log: o.log, what: "arms check" },
  );
  return {
    async tick() {
      await once();
      await armsRound();
    },
    async stop() {
      await Promise.all([rounds.stop(), armsRounds.stop()]);
    },
  };
}
