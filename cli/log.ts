import { pino, type Logger } from "pino";

/** Errors log their kind, message, code and stack, never the objects hanging off them (pg clients). */
function errSerializer(e: unknown) {
  if (!(e instanceof Error)) return e;
  const x = e as Error & { code?: unknown };
  return { type: x.name, message: x.message, ...(x.code !== undefined ? { code: x.code } : {}), stack: x.stack };
}

export function makeLogger(level: string): Logger {
  return pino({ level, serializers: { err: errSerializer } });
}
