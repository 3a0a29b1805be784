import { OutOfRangeError } from "../contracts/index.ts";
import { PoisonMessageError } from "./consume.ts";

/**
 * PostgreSQL refused the statement for what its rows hold, so the same rows fail on every retry:
 * a data exception (SQLSTATE class 22: a value out of a column's range, a NUL in text) or a row
 * that breaks its own table's rule (23502 not null, 23514 check). Unique and foreign-key
 * violations depend on other rows, which a retry may find changed, so they are not counted here;
 * nor is anything without a SQLSTATE (a lost connection).
 */
export function isDataError(e: unknown): boolean {
  return sqlState(e) !== undefined;
}

/** The data-error SQLSTATE of e or of an error it wraps (`cause`), if any. */
function sqlState(e: unknown, depth = 0): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string" && (/^22[0-9A-Z]{3}$/.test(code) || code === "23502" || code === "23514")) return code;
  const cause = (e as { cause?: unknown } | null)?.cause;
  return cause !== undefined && depth < 4 ? sqlState(cause, depth + 1) : undefined;
}

/** An error that handling the same message again would meet again: the message is dead-lettered, not retried. */
export function isPermanent(e: unknown): boolean {
  return isDataError(e) || e instanceof OutOfRangeError || e instanceof PoisonMessageError;
}

/** What a dead letter says of a permanent error. */
export function permanentReason(e: unknown): string {
  const code = sqlState(e);
  const msg = (e as Error | null)?.message ?? String(e);
  return code ? `the database refused it: ${msg} (SQLSTATE ${code})` : msg;
}

export interface Refused<T> {
  item: T;
  error: unknown;
}

/**
 * Writes all items at once; if the write fails with a data error (isDataError), writes each half
 * on its own, down to single items, and returns the items that fail alone as refused. k bad items
 * of n cost about 2k·log2(n) extra statements; a batch without bad items costs nothing extra. Any
 * other failure (a lost connection) propagates, so the caller retries the batch whole; halves
 * already written are then written again, which the writes must tolerate (idempotent).
 */
export async function writeIsolating<T>(items: T[], write: (part: T[]) => Promise<number>): Promise<{ written: number; refused: Refused<T>[] }> {
  const refused: Refused<T>[] = [];
  const go = async (part: T[]): Promise<number> => {
    if (part.length === 0) return 0;
    try {
      return await write(part);
    } catch (e) {
      if (!isDataError(e)) throw e;
      if (part.length === 1) {
        refused.push({ item: part[0]!, error: e });
        return 0;
      }
      const mid = part.length >> 1;
      return (await go(part.slice(0, mid))) + (await go(part.slice(mid)));
    }
  };
  const written = await go(items);
  return { written, refused };
}
