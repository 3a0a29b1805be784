import { describe, expect, it } from "vitest";
import { rangeSources } from "../../control/internal.ts";

// Which aggregate each part of a report's range is read from (control/reports/usage.ts): the parts
// cover the range exactly, without overlap, each on its source's bucket boundaries.
const H = 3_600_000;
const D = 24 * H;
const at = (iso: string) => Date.parse(`${iso}Z`);
const show = (parts: ReturnType<typeof rangeSources>) => parts.map((p) => [p.source, new Date(p.from).toISOString().slice(0, 16), new Date(p.to).toISOString().slice(0, 16)]);

describe("rangeSources", () => {
  // 2026-10-31 is a Saturday: whole weeks (from Monday 00:00 UTC) start on 2026-11-02.
  const from = at("2026-10-31T00:00:00");
  const to = at("2026-11-30T00:00:00");

  it("by user: whole weeks from usage_user_weekly, the days around them from usage_daily", () => {
    expect(show(rangeSources(from, to, "byUser"))).toEqual([
      ["usage_daily", "2026-10-31T00:00", "2026-11-02T00:00"],
      ["usage_user_weekly", "2026-11-02T00:00", "2026-11-30T00:00"],
    ]);
  });

  it("by terminal: whole days from usage_terminal_daily; `all`: from usage_daily", () => {
    expect(show(rangeSources(from, to, "byTerminal"))).toEqual([["usage_terminal_daily", "2026-10-31T00:00", "2026-11-30T00:00"]]);
    expect(show(rangeSources(from, to, "all"))).toEqual([["usage_daily", "2026-10-31T00:00", "2026-11-30T00:00"]]);
  });

  it("a range not on hours: minutes from session_usage, hours from usage_hourly, then days and weeks", () => {
    const a = at("2026-11-01T21:30:00") + 1;
    const b = at("2026-11-18T12:00:00") + 1;
    expect(show(rangeSources(a, b, "byUser"))).toEqual([
      ["session_usage", "2026-11-01T21:30", "2026-11-01T22:00"],
      ["usage_hourly", "2026-11-01T22:00", "2026-11-02T00:00"],
      ["usage_user_weekly", "2026-11-02T00:00", "2026-11-16T00:00"],
      ["usage_daily", "2026-11-16T00:00", "2026-11-18T00:00"],
      ["usage_hourly", "2026-11-18T00:00", "2026-11-18T12:00"],
      ["session_usage", "2026-11-18T12:00", "2026-11-18T12:00"],
    ]);
  });

  it.each([
    ["less than a week", at("2026-11-03T00:00:00"), at("2026-11-09T00:00:00")],
    ["a week not on Mondays", at("2026-11-04T00:00:00"), at("2026-11-11T00:00:00")],
  ])("%s: no weeks", (_name, a, b) => {
    expect(rangeSources(a, b, "byUser").map((p) => p.source)).toEqual(["usage_daily"]);
  });

  it.each([
    [at("2026-10-31T00:00:00"), at("2026-11-30T00:00:00")],
    [at("2026-11-01T21:30:00") + 1, at("2026-12-24T12:00:00") + 1],
    [at("2026-11-02T00:00:00"), at("2026-11-09T00:00:00")],
    [at("2026-11-02T00:10:00"), at("2026-11-02T00:20:00")],
  ])("covers [%i, %i) exactly, on its sources' boundaries", (a, b) => {
    for (const agg of ["byUser", "byTerminal", "all"] as const) {
      const parts = rangeSources(a, b, agg);
      expect(parts[0]!.from).toBe(a);
      expect(parts.at(-1)!.to).toBe(b);
      for (let i = 1; i < parts.length; i++) expect(parts[i]!.from).toBe(parts[i - 1]!.to);
      for (const p of parts) {
        const width = { usage_hourly: H, usage_daily: D, usage_terminal_daily: D, usage_user_weekly: 7 * D, session_usage: 0 }[p.source];
        const origin = p.source === "usage_user_weekly" ? 4 * D : 0;
        if (width) expect([(p.from - origin) % width, (p.to - origin) % width]).toEqual([0, 0]);
      }
    }
  });
});
