import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NATS_URL } from "../helpers/env.ts";
import { until } from "../helpers/platform.ts";
import { checkLeaksOpenedOnce, leakOnIdle, checkSessions, killHard, ownerProcess, LEASE_S, PARTITIONS, spread, startSessions, TAKEOVER_BOUND_MS, takeoverFleet, type Takeover } from "../helpers/takeover.ts";

// Issue 12, point 3, for the processors: two instances share the partitions; one is killed -9 with
// sessions running and leaks beginning on its terminals; the other takes its partitions over within
// the bound, and every session is still cut at its target, billed once, every leak opened once.
let f: Takeover;

beforeAll(async () => {
  f = await takeoverFleet(NATS_URL);
}, 120_000);

afterAll(async () => {
  await f?.stop();
}, 60_000);

describe("processor instances sharing partitions (one NATS server)", () => {
  it("a lone instance holds every partition; a second one that joins gets half of them handed over", async () => {
    await f.startProcessor();
    const alone = await spread(f, 1);
    expect(new Set(alone.values()).size).toBe(1);
    await f.startProcessor();
    const both = await spread(f, 2);
    expect(new Set(both.values()).size).toBe(2);
  }, 120_000);

  it("kill -9 of one: its partitions are taken over within the bound, sessions cut at their targets and billed once, leaks opened once", async () => {
    const ids = await startSessions(f);
    const before = await f.owners();
    // The victim: the owner of partition 0, and every terminal of its partitions.
    const victim = before.get(0)!;
    const victimProc = ownerProcess(f, victim);
    // Leaks begin on every idle terminal; once their readings are stored, the 2 s debounce spans the kill on the victim's.
    const idle = await leakOnIdle(f);
    const killedAt = Date.now();
    killHard(victimProc);
    const after = await until(async () => {
      const o = await f.owners();
      return [...o.values()].every((v) => v !== null && v !== victim) ? o : null;
    }, 30_000, 100);
    const takeoverMs = Date.now() - killedAt;
    console.log(`takeover of ${[...before].filter(([, v]) => v === victim).length} of ${PARTITIONS} partitions: ${takeoverMs} ms (lease ${LEASE_S} s)`);
    expect(new Set(after.values()).size).toBe(1);
    expect(takeoverMs).toBeLessThan(TAKEOVER_BOUND_MS);

    await checkSessions(f, ids);
    // Every leak opened once, whichever instance decided it (the message id dedupes a repeat).
    await checkLeaksOpenedOnce(f, idle);
    const { rows } = await f.tp.p.db.query("SELECT terminal_id, count(*)::int AS n FROM faults WHERE kind = 'off_current_leak' GROUP BY terminal_id");
    for (const r of rows) expect(r.n).toBe(1);
  }, 180_000);

  it("an instance started again gets its share back", async () => {
    await f.startProcessor();
    const o = await spread(f, 2, 40_000);
    expect(new Set(o.values()).size).toBe(2);
  }, 120_000);
});
