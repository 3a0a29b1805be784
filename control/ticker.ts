import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { relayOutbox } from "./outbox.ts";
import { everyRound } from "./rounds.ts";
import { claimDue, expireCommand, expiredCommands, type Timing } from "./commands.ts";
import type { KV } from "@nats-io/kv";
import type { Db } from "./db.ts";
import type { Metrics } from "./metrics.ts";
import { checkArms } from "./sessions/arms-check.ts";
import type { SessionService } from "./sessions/service.ts";

/**
 * Repeats due commands, ends those past their deadline, and relays the outbox. Every control instance runs one;
 * SKIP LOCKED claims make each repeat and each expiry happen once across instances. Its own slower
 * round checks the arms bucket against the sessions (each instance does; the repairs are
 * compare-and-set under the session's lock, so two instances never undo each other).
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
}) {
  const js = jetstream(o.nc);
  const once = async () => {
    const now = o.clock();
    for (const cmd of await claimDue(o.db, now, o.timing)) o.sessions.repeat(cmd);
    for (const cmd of await expiredCommands(o.db, now)) {
      await o.sessions.onCommandExpired(cmd, (tx) => expireCommand(tx, cmd.cmdId, now));
    }
    while ((await relayOutbox(o.db, js)) === 200);
  };
  const rounds = everyRound(o.everyMs, once, { log: o.log, what: "command tick" });
  const armsRound = async () => {
    const r = await checkArms(o.db, o.arms, o.log);
    o.metrics.armsRepaired.inc({ change: "rearmed" }, r.rearmed);
    o.metrics.armsRepaired.inc({ change: "removed" }, r.removed);
  };
  const armsRounds = everyRound(o.armsCheckMs, armsRound, { log: o.log, what: "arms check" });
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
