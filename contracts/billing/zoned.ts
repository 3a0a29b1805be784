/** Wall-clock arithmetic in IANA time zones with nothing but Intl, for tariff periods. */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(tz, f);
  }
  return f;
}

export function isValidTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

export interface LocalTime {
  year: number;
  month: number;
  day: number;
  /** Milliseconds since local midnight. */
  msOfDay: number;
}

export function localTime(ts: number, tz: string): LocalTime {
  const d = new Date(ts + offsetAt(ts, tz));
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    msOfDay: d.getUTCHours() * 3_600_000 + d.getUTCMinutes() * 60_000 + d.getUTCSeconds() * 1000 + d.getUTCMilliseconds(),
  };
}

/** The wall clock in tz at ts as Intl formats it: the ground truth, and the slow path. */
function formattedLocalTime(ts: number, tz: string): LocalTime {
  const parts = formatter(tz).formatToParts(new Date(ts));
  const get = (t: Intl.DateTimeFormatPartTypes) => Number(parts.find((p) => p.type === t)?.value);
  const ms = ((ts % 1000) + 1000) % 1000;
  return {
    year: get("year"),
    month: get("month"),
    day: get("day"),
    msOfDay: get("hour") * 3_600_000 + get("minute") * 60_000 + get("second") * 1000 + ms,
  };
}

function formattedOffset(ts: number, tz: string): number {
  const l = formattedLocalTime(ts, tz);
  return Date.UTC(l.year, l.month - 1, l.day) + l.msOfDay - ts;
}

const HOUR = 3_600_000;
/**
 * Per time zone, the offset of each UTC hour that has one offset from its first millisecond to its
 * last, or NaN for an hour with a change in it (known, so its instants skip the hour's two looks).
 */
const hourOffsets = new Map<string, Map<number, number>>();
/** Hours kept per zone (a session touches a few, a month's report about 720); past this the map starts afresh. */
const MAX_HOURS = 20_000;

/**
 * Offset of local wall time from UTC at instant ts, in ms. Intl is asked twice per UTC hour and
 * zone, not on every call: formatToParts, several times per session reading, was the cutoff
 * stage's largest cost (docs/scaling.md). An hour whose first and last milliseconds have the same
 * offset has it throughout (DST changes are months apart); an hour with a change in it is asked
 * about each instant, as before.
 */
function offsetAt(ts: number, tz: string): number {
  const hour = Math.floor(ts / HOUR);
  let byHour = hourOffsets.get(tz);
  let known = byHour?.get(hour);
  if (known === undefined) {
    const first = formattedOffset(hour * HOUR, tz);
    known = formattedOffset(hour * HOUR + HOUR - 1, tz) === first ? first : NaN;
    if (!byHour || byHour.size >= MAX_HOURS) hourOffsets.set(tz, (byHour = new Map()));
    byHour.set(hour, known);
  }
  // An hour with a change in it (the binary search of offsetChangeBetween runs there): each instant asked.
  return Number.isNaN(known) ? formattedOffset(ts, tz) : known;
}

/**
 * The instant at which the local wall clock in tz shows `msOfDay` on the given local date
 * (msOfDay may be 24h, meaning the next midnight). Wall times skipped by a DST jump map to the
 * instant of the jump (the first instant whose wall time is later); repeated ones to the first.
 */
export function instantOf(year: number, month: number, day: number, msOfDay: number, tz: string): number {
  const wall = Date.UTC(year, month - 1, day) + msOfDay;
  // The offsets in force a day either side: DST changes are months apart, so only these can apply.
  const a = wall - offsetAt(wall - 86_400_000, tz);
  const b = wall - offsetAt(wall + 86_400_000, tz);
  const fits = [a, b].filter((c) => c + offsetAt(c, tz) === wall);
  if (fits.length > 0) return Math.min(...fits);
  return offsetChangeBetween(Math.min(a, b), Math.max(a, b), tz) ?? Math.max(a, b);
}

/**
 * The first instant in (a, b] whose UTC offset in tz differs from the one at a, or null if the
 * offset at b is the one at a (DST changes are months apart: at most one lies between).
 */
export function offsetChangeBetween(a: number, b: number, tz: string): number | null {
  const o = offsetAt(a, tz);
  if (b <= a || offsetAt(b, tz) === o) return null;
  let lo = a;
  let hi = b;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (offsetAt(mid, tz) === o) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Local hour of day (0-23) of an instant, for hourly usage curves. */
export function localHour(ts: number, tz: string): number {
  return Math.floor(localTime(ts, tz).msOfDay / 3_600_000);
}
