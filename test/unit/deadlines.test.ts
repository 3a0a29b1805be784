import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Deadlines } from "../../processors/internal.ts";

describe("Deadlines", () => {
  it("gives each terminal once, at or after its latest deadline, never before", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }), fc.integer({ min: 0, max: 10 })), { maxLength: 200 }),
        (ops) => {
          const d = new Deadlines();
          const want = new Map<string, number>();
          let now = 0;
          for (const [t, at, advance] of ops) {
            const id = `T${t}`;
            d.set(id, at);
            if (at === null) want.delete(id);
            else want.set(id, at);
            now += advance;
            const due = d.takeDue(now);
            expect(new Set(due).size).toBe(due.length);
            for (const x of due) {
              expect(want.get(x)).toBeLessThanOrEqual(now);
              want.delete(x);
            }
            // Nothing due is left behind.
            for (const [x, w] of want) if (w <= now) throw new Error(`${x} due at ${w} not given at ${now}`);
          }
        },
      ),
    );
  });

  it("moving a deadline later keeps one entry: the terminal comes up at the later time only", () => {
    const d = new Deadlines();
    d.set("A", 10);
    for (let t = 11; t <= 1000; t++) d.set("A", t);
    expect(d.takeDue(999)).toEqual([]);
    expect(d.takeDue(1000)).toEqual(["A"]);
    expect(d.takeDue(5000)).toEqual([]);
    expect((d as unknown as { heap: unknown[] }).heap.length).toBe(0);
  });
});
