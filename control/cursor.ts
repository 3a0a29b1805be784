import { ApiError } from "./errors.ts";

/**
 * Opaque pagination cursors: the sort key of the last row of a page, as base64url JSON. A cursor
 * from outside is bounded (length, shape) and checked here, so a forged one is a 400, never a
 * query with strange values.
 */
export type CursorKey = (string | number)[];

/** The longest cursor accepted: ids are at most 64 characters, keys at most 3 values. */
export const MAX_CURSOR_CHARS = 400;

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

/** The key of a cursor, checked against its expected shape: "s" a string, "n" a safe integer. */
export function decodeCursor(cursor: string, shape: ("s" | "n")[]): CursorKey {
  const bad = () => new ApiError(400, "invalid_cursor", "cursor is not one this listing gave out");
  if (cursor.length > MAX_CURSOR_CHARS || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad();
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (!Array.isArray(key) || key.length !== shape.length) throw bad();
  key.forEach((v, i) => {
    const ok = shape[i] === "s" ? typeof v === "string" && v.length <= 128 && !v.includes("\u0000") : Number.isSafeInteger(v);
    if (!ok) throw bad();
  });
  return key as CursorKey;
}

/** A page of rows: `next` is the cursor of the following page, null on the last one. */
export interface Page<T> {
  items: T[];
  next: string | null;
}

/**
 * Builds a page from up to limit + 1 rows fetched: the extra row only says that more follow, so
 * the last page never points to an empty one.
 */
export function pageOf<R, T>(rows: R[], limit: number, key: (r: R) => CursorKey, view: (r: R) => T): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  return { items: kept.map(view), next: more ? encodeCursor(key(kept.at(-1)!)) : null };
}
