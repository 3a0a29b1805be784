/**
 * Exact non-negative-denominator rationals over bigint. Fees are sums of products of energy,
 * time and prices that are rarely whole cents; they stay exact until the one rounding at the end.
 */
export class Rational {
  readonly n: bigint;
  readonly d: bigint;

  constructor(n: bigint, d: bigint = 1n) {
    if (d === 0n) throw new RangeError("rational with zero denominator");
    if (d < 0n) {
      n = -n;
      d = -d;
    }
    const g = gcd(n < 0n ? -n : n, d);
    this.n = g > 1n ? n / g : n;
    this.d = g > 1n ? d / g : d;
  }

  static readonly ZERO = new Rational(0n);

  static of(n: bigint | number, d: bigint | number = 1n): Rational {
    return new Rational(BigInt(n), BigInt(d));
  }

  add(o: Rational): Rational {
    if (this.d === o.d) return new Rational(this.n + o.n, this.d);
    return new Rational(this.n * o.d + o.n * this.d, this.d * o.d);
  }

  sub(o: Rational): Rational {
    return this.add(new Rational(-o.n, o.d));
  }

  mul(o: Rational): Rational {
    return new Rational(this.n * o.n, this.d * o.d);
  }

  cmp(o: Rational): -1 | 0 | 1 {
    const l = this.n * o.d;
    const r = o.n * this.d;
    return l < r ? -1 : l > r ? 1 : 0;
  }

  /** Round half up (away from zero for halves of positive values), to a whole number. */
  roundHalfUp(): bigint {
    const twice = 2n * this.n + this.d;
    const den = 2n * this.d;
    return floorDiv(twice, den);
  }

  ceil(): bigint {
    return -floorDiv(-this.n, this.d);
  }

  floor(): bigint {
    return floorDiv(this.n, this.d);
  }

  toString(): string {
    return this.d === 1n ? `${this.n}` : `${this.n}/${this.d}`;
  }

  toJSON(): string {
    return this.toString();
  }

  static parse(s: string): Rational {
    const m = /^(-?\d+)(?:\/(\d+))?$/.exec(s);
    if (!m) throw new SyntaxError(`not a rational: ${JSON.stringify(s)}`);
    return new Rational(BigInt(m[1]!), m[2] ? BigInt(m[2]) : 1n);
  }
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a === 0n ? 1n : a;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

/**
 * A number too large (or not finite) for exact arithmetic. Wire schemas bound every number, so
 * this means an unchecked input reached billing: a caller dead-letters the message that carried
 * it rather than retry it (a generic RangeError looked transient and was retried forever).
 */
export class OutOfRangeError extends RangeError {
  override name = "OutOfRangeError";
}

/**
 * Meter registers arrive as JSON numbers in Wh with at most 3 decimals of meaning; they become
 * integer milliwatt-hours at the edge, so all energy arithmetic after that is exact.
 */
export function whToMwh(wh: number): bigint {
  const mwh = Math.round(wh * 1000);
  // Past 2^53 the rounding is no longer to the mWh, and Infinity has no BigInt at all.
  if (!Number.isSafeInteger(mwh)) throw new OutOfRangeError(`energy ${wh} Wh is out of range for exact arithmetic`);
  return BigInt(mwh);
}

export function mwhToWh(mwh: bigint): number {
  return Number(mwh) / 1000;
}
