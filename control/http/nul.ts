/** At most this many problems are listed in one answer. */
const MAX_DETAILS = 20;

/**
 * Where in a parsed request value a string (or an object key) holds U+0000, as the paths of the
 * protocol's error details (`body.reason`, `params.sessionId`).
 */
export function nulPaths(value: unknown, where: string): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  const walk = (v: unknown, path: string, depth: number) => {
    if (out.length >= MAX_DETAILS || depth > 64) return;
    if (typeof v === "string") {
      if (v.includes("\u0000")) out.push({ path, message: "must not contain the NUL character (U+0000)" });
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, `${path}.${i}`, depth + 1));
    } else if (v !== null && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (k.includes("\u0000")) out.push({ path: `${path}.${k.replace(/\u0000/g, "\\u0000")}`, message: "keys must not contain the NUL character (U+0000)" });
        walk(x, `${path}.${k}`, depth + 1);
      }
    }
  };
  walk(value, where, 0);
  return out;
}
