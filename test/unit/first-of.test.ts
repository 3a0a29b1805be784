import { describe, expect, it } from "vitest";
import { firstOf } from "../../ingest/index.ts";

// firstOf: a KV listing or watch whose consumer was placed on a dead server hangs for the whole
// request timeout; a second try beside it, after a moment's patience, is placed elsewhere.
const later = <T>(ms: number, v: T) => new Promise<T>((r) => setTimeout(() => r(v), ms));

describe("firstOf", () => {
  it("starts a second try beside a hung one after the patience, takes the first answer, and hands the late one to discard", async () => {
    const started: number[] = [];
    const discarded: string[] = [];
    const t0 = Date.now();
    const got = await firstOf(
      () => {
        started.push(Date.now() - t0);
        return started.length === 1 ? later(300, "hung") : later(10, "second");
      },
      { patienceMs: 50, tries: 5, discard: (v) => discarded.push(v) },
    );
    expect(got).toBe("second");
    expect(started).toHaveLength(2);
    expect(started[1]!).toBeGreaterThanOrEqual(40);
    await later(350, null);
    expect(discarded).toEqual(["hung"]);
  });

  it("follows a try that fails at once with the next, and rejects with the error when every try failed", async () => {
    let n = 0;
    await expect(firstOf(() => Promise.reject(new Error(`try ${++n}`)), { patienceMs: 20, tries: 3, discard: () => {} })).rejects.toThrow(/try 3/);
    expect(n).toBe(3);
    let m = 0;
    expect(await firstOf(async () => (++m < 3 ? Promise.reject(new Error("unavailable")) : "third"), { patienceMs: 20, tries: 5, discard: () => {} })).toBe("third");
  });
});
