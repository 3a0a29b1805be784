import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAULTS, INVARIANTS, runChaos, type ChaosResult, type PhaseResult } from "../../bench/index.ts";
import { PG_ADMIN_URL } from "../helpers/env.ts";

/**
 * The short form of `npm run chaos` (CI): the same platform as separate processes, the same fleet
 * of 200 terminals and the same faults, with shorter waits. Each invariant after each fault is one
 * test, so a failure names the fault and the invariant; its message carries the first violations.
 */
let result: ChaosResult | undefined;
let failure: unknown;

beforeAll(async () => {
  try {
    result = await runChaos({
      pgAdminUrl: PG_ADMIN_URL,
      warmupMs: 8_000,
      settleMs: 4_000,
      scrambleMs: 8_000,
      lateMaxMs: 12_000,
      pgCutMs: 3_000,
      natsDownMs: 2_000,
      recoverTimeoutMs: 90_000,
      drainTimeoutMs: 60_000,
      keepLogs: false,
      log: () => {},
    });
  } catch (e) {
    failure = e;
  }
});

afterAll(() => {
  if (result) for (const p of result.phases) console.log(`${p.fault}: recover ${p.recoverMs ?? "-"} ms, disrupted ${p.sessions.disrupted}`);
});

const phase = (name: string): PhaseResult => {
  if (!result) throw new Error(`the chaos run did not complete: ${String(failure)}`);
  const p = result.phases.find((x) => x.fault === name);
  if (!p) throw new Error(`no phase ${name}`);
  return p;
};

describe.each(["baseline", ...FAULTS, "final"])("chaos: %s", (name) => {
  if (name !== "baseline" && name !== "final")
    it("recovers", () => {
      const p = phase(name);
      expect(p.recoverMs, `still lagging: ${(p.lagging ?? []).join("; ")}`).not.toBeNull();
    });
  it.each(INVARIANTS)("%s", (inv) => {
    const r = phase(name).invariants[inv];
    expect(r.violations, `${r.violations} of ${r.checked}:\n${r.examples.join("\n")}`).toBe(0);
  });
});
