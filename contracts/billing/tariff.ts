import { z } from "zod";
import { localTime, offsetChangeBetween } from "./zoned.ts";

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$|^24:00$/;
const hhmm = z.string().regex(HHMM, "must be HH:MM (00:00 to 24:00)");

export const tariffPeriodSchema = z.object({
  start: hhmm,
  end: hhmm,
  /** Integer cents per kWh. */
  energyCentsPerKwh: z.number().int().nonnegative().max(1_000_000),
  /** Integer cents per hour of session time. */
  timeCentsPerHour: z.number().int().nonnegative().max(1_000_000).default(0),
});
export type TariffPeriodInput = z.infer<typeof tariffPeriodSchema>;

export function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(":").map(Number);
  return h! * 60 + m!;
}

/** Periods must tile the local day: start at 00:00, each start where the last ended, end at 24:00. */
export const tariffPeriodsSchema = z
  .array(tariffPeriodSchema)
  .min(1)
  .max(48)
  .superRefine((periods, ctx) => {
    // An empty list or a malformed time already has its issue; tiling them would only add bogus ones.
    if (periods.length === 0 || periods.some((p) => !HHMM.test(p.start) || !HHMM.test(p.end))) return;
    let expected = 0;
    periods.forEach((p, i) => {
      const s = minutesOf(p.start);
      const e = minutesOf(p.end);
      if (s !== expected)
        ctx.addIssue({ code: "custom", path: [i, "start"], message: `must be ${fmt(expected)} (periods must cover the day in order without gaps or overlaps)` });
      if (e <= s) ctx.addIssue({ code: "custom", path: [i, "end"], message: "must be after start" });
      expected = e;
    });
    if (expected !== 1440)
      ctx.addIssue({ code: "custom", path: [periods.length - 1, "end"], message: "the last period must end at 24:00" });
  });

function fmt(min: number): string {
  return `${String(Math.floor(min / 60)).padStart(2, "0")}:${String(min % 60).padStart(2, "0")}`;
}

/** A tariff version as the billing code uses it: periods in minutes of the local day. */
export interface Tariff {
  version: number;
  timezone: string;
  periods: TariffPeriod[];
}
export interface TariffPeriod {
  startMin: number;
  endMin: number;
  energyCentsPerKwh: number;
  timeCentsPerHour: number;
}

export function toTariff(version: number, timezone: string, periods: TariffPeriodInput[]): Tariff {
  return {
    version,
    timezone,
    periods: periods.map((p) => ({
      startMin: minutesOf(p.start),
      endMin: minutesOf(p.end),
      energyCentsPerKwh: p.energyCentsPerKwh,
      timeCentsPerHour: p.timeCentsPerHour,
    })),
  };
}

export function periodInputs(t: Tariff): TariffPeriodInput[] {
  return t.periods.map((p) => ({
    start: fmt(p.startMin),
    end: fmt(p.endMin),
    energyCentsPerKwh: p.energyCentsPerKwh,
    timeCentsPerHour: p.timeCentsPerHour,
  }));
}

export interface Segment {
  from: number;
  to: number;
  /** Index into tariff.periods. */
  period: number;
}

/**
 * Cuts [from, to) at every period boundary of the tariff's local day. Each instant belongs to the
 * period its local wall-clock time falls in, also across DST changes (a boundary in a skipped hour
 * falls at the jump; a repeated hour is priced by its wall-clock time both times).
 */
export function segments(t: Tariff, from: number, to: number): Segment[] {
  const out: Segment[] = [];
  let at = from;
  let joinNext = false;
  while (at < to) {
    const l = localTime(at, t.timezone);
    const minute = Math.floor(l.msOfDay / 60_000);
    let idx = t.periods.findIndex((p) => minute >= p.startMin && minute < p.endMin);
    if (idx < 0) idx = t.periods.length - 1;
    // Where the wall clock reaches the period's end while the UTC offset stays the one at `at`...
    const endMin = t.periods[idx]!.endMin;
    let wallEnd = at + endMin * 60_000 - l.msOfDay;
    if (!(wallEnd > at)) wallEnd = at + 60_000; // only for a tariff that does not tile the day
    let end = Math.min(to, wallEnd);
    // ...unless a DST change comes first: cut there, and look at the wall clock again.
    const change = offsetChangeBetween(at, end, t.timezone);
    if (change !== null) end = change;
    // A DST change is no period boundary: the next piece extends this segment if it is in the same
    // period, unless the wall clock reached midnight too (one segment per local day).
    const last = out[out.length - 1];
    if (joinNext && last && last.period === idx) last.to = end;
    else out.push({ from: at, to: end, period: idx });
    joinNext = change !== null && !(end === wallEnd && endMin === 1440);
    at = end;
  }
  return out;
}

export function maxPrices(t: Tariff): { energyCentsPerKwh: number; timeCentsPerHour: number } {
  return {
    energyCentsPerKwh: Math.max(...t.periods.map((p) => p.energyCentsPerKwh)),
    timeCentsPerHour: Math.max(...t.periods.map((p) => p.timeCentsPerHour)),
  };
}
