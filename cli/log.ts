import { pino, type Logger } from "pino";

/** Errors log their kind, message, code and stack, never the objects hanging off them (pg clients). */
function errSerializer(e: unknown) {
  if (!(e instanceof Error)) return e;
  const x = e as Error & { code?: unknown };
  return { type: x.name, message: x.message, ...(x.code !== undefined ? { code: x.code } : {}), stack: x.stack };
}

/** JSON lines on stdout, or appended to `file` (the demo keeps the terminal for its summary). */
export function makeLogger(level: string, file?: string): Logger {
  const opts = { level, serializers: { err: errSerializer } };
  return file ? pino(opts, pino.destination({ dest: file, mkdir: true, sync: true })) : pino(opts);
}
