import { describe, expect, it } from "vitest";
import { clientKey, nulPaths, streamCounter, storedProfile } from "../../control/internal.ts";

describe("clientKey", () => {
  it.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:10.0.0.1", "::ffff:10.0.0.1"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::9", "2001:db8:1:2::/64"],
    ["2001:0DB8:0001:0002:ffff::1", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
  ])("%s counts as %s", (ip, key) => expect(clientKey(ip)).toBe(key));
});

describe("nulPaths", () => {
  it("finds U+0000 in strings and keys at any depth, with their paths", () => {
    expect(nulPaths({ a: "ok", b: ["x", { c: "y\u0000" }], "k\u0000": 1 }, "body")).toEqual([
      { path: "body.b.1.c", message: expect.any(String) },
      { path: "body.k\\u0000", message: expect.any(String) },
    ]);
    expect(nulPaths("\u0000", "params")).toHaveLength(1);
    expect(nulPaths({ n: 1, s: "fine", z: null }, "body")).toEqual([]);
    expect(nulPaths(undefined, "body")).toEqual([]);
  });
});

describe("storedProfile", () => {
  it("keeps good fields and defaults the ones today's bounds refuse", () => {
    expect(storedProfile({ maxPowerW: 4000.5, onCurrentA: [10, 12], faultClearS: 1e12 })).toEqual({
      onCurrentA: [10, 12],
      offCurrentMaxA: 0.1,
      maxPowerW: 4000,
      faultDebounceS: 2,
      faultClearS: 10,
      voltageV: [198, 242],
    });
    expect(storedProfile(null).maxPowerW).toBe(4000);
    expect(storedProfile("garbage").maxPowerW).toBe(4000);
  });
});

describe("streamCounter", () => {
  it("refuses past the cap per key with 429, and each release frees one slot once", () => {
    const c = streamCounter(2);
    const a = c.take("franchisee:FR1");
    c.take("franchisee:FR1");
    expect(() => c.take("franchisee:FR1")).toThrow(expect.objectContaining({ status: 429, code: "rate_limited" }));
    c.take("franchisee:FR2");
    a();
    a();
    expect(c.count("franchisee:FR1")).toBe(1);
    c.take("franchisee:FR1");
    expect(() => c.take("franchisee:FR1")).toThrow();
  });
});
