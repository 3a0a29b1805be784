import { ConfigError, idSchema, loadConfig } from "../contracts/index.ts";
import { roleSchema, signToken } from "../control/index.ts";

const usage = `usage: npm run token -- --role admin|franchisee|user --sub ID [--ttl 8h] [--demo]
  Prints a token signed with VEND_JWT_SECRET (with JWT_ISSUER / JWT_AUDIENCE when set), for an
  operator's first calls and scripts. --ttl: seconds, or a number with s, m, h or d (default 1h);
  at most JWT_MAX_LIFETIME_S. --demo signs with the demo platform's secret (npm start -- --demo).`;

/** "8h" → 28800; "90" → 90. */
export function parseTtl(v: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(v);
  if (!m) throw new ConfigError(`--ttl takes seconds or a number with s, m, h or d (8h); got ${JSON.stringify(v)}`);
  return Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as "" | "s" | "m" | "h" | "d"];
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help")) return void console.log(usage);
  const config = loadConfig(process.env, { demo: argv.includes("--demo") });
  const role = roleSchema.safeParse(arg(argv, "--role"));
  const sub = idSchema.safeParse(arg(argv, "--sub"));
  if (!role.success) throw new ConfigError(`--role takes admin, franchisee or user\n${usage}`);
  if (!sub.success) throw new ConfigError(`--sub takes an id (1 to 64 letters, digits, _ or -)\n${usage}`);
  const ttl = parseTtl(arg(argv, "--ttl") ?? "1h");
  if (ttl < 1 || ttl > config.JWT_MAX_LIFETIME_S) throw new ConfigError(`--ttl must be between 1 s and JWT_MAX_LIFETIME_S (${config.JWT_MAX_LIFETIME_S} s)`);
  console.log(await signToken(config.VEND_JWT_SECRET!, sub.data, role.data, ttl, { issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE }));
}

main(process.argv.slice(2)).catch((e) => {
  console.error(e instanceof ConfigError ? e.message : e);
  process.exit(1);
});
