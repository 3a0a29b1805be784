import { describe, it, expect } from "vitest";
import { Rational, whToMwh, mwhToWh } from "../../contracts/index.ts";

const r = (n: bigint | number, d: bigint | number = 1n) => new Rational(BigInt(n), BigInt(d));

describe("Rational normalisation", () => {
  it.each([
    // [n, d, normalised n, normalised d]
    [2n, 4n, 1n, 2n],
    [-2n, 4n, -1n, 2n],
    [2n, -4n, -1n, 2n],
    [-2n, -4n, 1n, 2n],
    [0n, 5n, 0n, 1n],
    [0n, -5n, 0n, 1n],
    [6n, 3n, 2n, 1n],
    [7n, 1n, 7n, 1n],
    [1_000_000n, 3_000_000n, 1n, 3n],
    [10n ** 20n, 10n ** 18n, 100n, 1n],
    [-(2n ** 64n), 2n ** 62n, -4n, 1n],
  ])("%s/%s -> %s/%s", (n, d, en, ed) => {
    const x = new Rational(n, d);
    expect(x.n).toBe(en);
    expect(x.d).toBe(ed);
  });

  it("defaults the denominator to 1", () => {
    expect(new Rational(5n).d).toBe(1n);
  });

  it("rejects a zero denominator", () => {
    expect(() => new Rational(1n, 0n)).toThrow(RangeError);
    expect(() => Rational.of(0, 0)).toThrow(RangeError);
  });

  it.each([
    [3, 6, "1/2"],
    [3n, 6n, "1/2"],
    [-4, 2, "-2"],
    [0, 7, "0"],
  ])("of(%s, %s) = %s", (n, d, s) => {
    expect(Rational.of(n, d).toString()).toBe(s);
  });

  it("of() refuses non-integer numbers", () => {
    expect(() => Rational.of(1.5)).toThrow(RangeError);
  });

  it("ZERO is 0/1", () => {
    expect(Rational.ZERO.n).toBe(0n);
    expect(Rational.ZERO.d).toBe(1n);
  });
});

describe("Rational arithmetic", () => {
  it.each([
    // [a, b, a + b]
    [r(1, 2), r(1, 3), "5/6"],
    [r(1, 6), r(1, 3), "1/2"], // 1/6 + 2/6 = 3/6
    [r(1, 4), r(1, 4), "1/2"], // same denominator path, still normalised
    [r(-1, 2), r(1, 2), "0"],
    [r(0), r(7, 9), "7/9"],
    [r(2, 3), r(1, 3), "1"],
    [r(1, 1_000_000), r(999_999, 1_000_000), "1"],
    [r(-5, 2), r(1, 3), "-13/6"], // -15/6 + 2/6
  ])("%s + %s = %s", (a, b, s) => {
    expect(a.add(b).toString()).toBe(s);
    expect(b.add(a).toString()).toBe(s);
  });

  it.each([
    [r(1, 2), r(1, 3), "1/6"],
    [r(1, 3), r(1, 2), "-1/6"],
    [r(5), r(5), "0"],
  ])("%s - %s = %s", (a, b, s) => {
    expect(a.sub(b).toString()).toBe(s);
  });

  it.each([
    [r(2, 3), r(3, 4), "1/2"],
    [r(-2, 3), r(3, 4), "-1/2"],
    [r(-2, 3), r(-3, 4), "1/2"],
    [r(0), r(3, 4), "0"],
    [r(1_000_000, 3), r(60, 1_000_000), "20"], // 1000000/3 mWh at 60 c/kWh = 20 c
    [r(7), r(1, 7), "1"],
  ])("%s * %s = %s", (a, b, s) => {
    expect(a.mul(b).toString()).toBe(s);
  });

  it.each([
    [r(1, 3), r(2, 6), 0],
    [r(1, 3), r(333, 1000), 1],
    [r(333, 1000), r(1, 3), -1],
    [r(-1, 2), r(1, 3), -1],
    [r(-1, 2), r(-2, 3), 1],
    [r(0), r(0, 5), 0],
    [r(10n ** 30n + 1n, 10n ** 30n), r(1), 1],
  ])("cmp(%s, %s) = %i", (a, b, c) => {
    expect(a.cmp(b)).toBe(c);
  });

  it("is immutable", () => {
    const a = r(1, 2);
    a.add(r(1, 3));
    a.mul(r(5));
    expect(a.toString()).toBe("1/2");
  });
});

describe("Rational rounding", () => {
  it.each([
    // [n, d, roundHalfUp]
    [5n, 2n, 3n], // 2.5 exactly: up
    [3n, 2n, 2n], // 1.5
    [1n, 2n, 1n], // 0.5
    [161n, 2n, 81n], // 80.5
    [249_999n, 100_000n, 2n], // 2.49999
    [2_499_999_999n, 1_000_000_000n, 2n], // 2.499999999
    [2_500_000_001n, 1_000_000_000n, 3n], // 2.500000001
    [499_999n, 1_000_000n, 0n], // 0.499999
    [500_000n, 1_000_000n, 1n], // 0.5
    [1n, 3n, 0n],
    [2n, 3n, 1n],
    [7n, 3n, 2n], // 2.333
    [8n, 3n, 3n], // 2.667
    [2n, 1n, 2n],
    [0n, 1n, 0n],
    [10n ** 20n + 1n, 2n, 5n * 10n ** 19n + 1n], // huge half
    // negative values (only reachable through sub): half up means towards +infinity
    [-5n, 2n, -2n], // -2.5
    [-3n, 2n, -1n], // -1.5
    [-1n, 2n, 0n], // -0.5
    [-13n, 5n, -3n], // -2.6
    [-12n, 5n, -2n], // -2.4
    [-1n, 3n, 0n],
    [-4n, 1n, -4n],
  ])("roundHalfUp(%s/%s) = %s", (n, d, e) => {
    expect(new Rational(n, d).roundHalfUp()).toBe(e);
  });

  it.each([
    // [n, d, ceil, floor]
    [5n, 2n, 3n, 2n],
    [-5n, 2n, -2n, -3n],
    [4n, 2n, 2n, 2n],
    [-4n, 2n, -2n, -2n],
    [1n, 1_000_000n, 1n, 0n],
    [-1n, 1_000_000n, 0n, -1n],
    [999_999n, 1_000_000n, 1n, 0n],
    [0n, 1n, 0n, 0n],
    [7n, 1n, 7n, 7n],
    [10n ** 20n + 1n, 10n ** 20n, 2n, 1n],
  ])("ceil/floor(%s/%s) = %s/%s", (n, d, c, f) => {
    const x = new Rational(n, d);
    expect(x.ceil()).toBe(c);
    expect(x.floor()).toBe(f);
  });
});

describe("Rational text form", () => {
  it.each([
    [r(1, 2), "1/2"],
    [r(-1, 2), "-1/2"],
    [r(7), "7"],
    [r(0), "0"],
    [r(-7), "-7"],
    [r(2_000_000, 3), "2000000/3"],
    [new Rational(10n ** 30n + 1n, 3n), "1000000000000000000000000000001/3"], // 10^30 + 1 = 2 (mod 3)
  ])("%s round trips through %s", (x, s) => {
    expect(x.toString()).toBe(s);
    expect(x.toJSON()).toBe(s);
    const back = Rational.parse(s);
    expect(back.n).toBe(x.n);
    expect(back.d).toBe(x.d);
    expect(back.cmp(x)).toBe(0);
  });

  it.each([
    ["2/4", "1/2"],
    ["-6/4", "-3/2"],
    ["-0", "0"],
    ["0/9", "0"],
    ["10/1", "10"],
    ["007", "7"],
  ])("parse(%s) normalises to %s", (s, e) => {
    expect(Rational.parse(s).toString()).toBe(e);
  });

  it.each(["", "1/-2", "1.5", " 1", "1 ", "1/", "/2", "a", "1/2/3", "+1", "--1"])("parse(%j) is a SyntaxError", (s) => {
    expect(() => Rational.parse(s)).toThrow(SyntaxError);
  });

  it("parse of a zero denominator is a RangeError", () => {
    expect(() => Rational.parse("1/0")).toThrow(RangeError);
  });

  it("serialises as a string inside JSON", () => {
    expect(JSON.stringify({ fee: r(220, 3) })).toBe('{"fee":"220/3"}');
  });
});

describe("whToMwh / mwhToWh", () => {
  it.each([
    [125034.2, 125034200n],
    [0.1 + 0.2, 300n], // 0.30000000000000004
    [0.3, 300n],
    [1.005, 1005n], // 1.005 * 1000 = 1004.9999999999999 in floating point
    [4.35, 4350n],
    [2.675, 2675n],
    [0.001, 1n],
    [0.0004, 0n],
    [0, 0n],
    [1, 1000n],
    [999999.999, 999999999n],
    [123456789.123, 123456789123n],
    [125035.3 - 125034.2, 1100n], // 1.1000000000058208
    [0.7 + 0.1, 800n], // 0.7999999999999999
  ])("whToMwh(%s) = %s", (wh, mwh) => {
    expect(whToMwh(wh)).toBe(mwh);
  });

  it.each([
    [125034200n, 125034.2],
    [1n, 0.001],
    [0n, 0],
    [999999999n, 999999.999],
  ])("mwhToWh(%s) = %s", (mwh, wh) => {
    expect(mwhToWh(mwh)).toBe(wh);
  });

  it("is exact for every 3-decimal register between 125034.000 and 125043.999", () => {
    // the expectation comes from the decimal text, not from floating point
    const bad: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const text = `${125034 + Math.floor(i / 1000)}.${String(i % 1000).padStart(3, "0")}`;
      if (whToMwh(Number(text)) !== BigInt(text.replace(".", ""))) bad.push(text);
    }
    expect(bad).toEqual([]);
  });
});
