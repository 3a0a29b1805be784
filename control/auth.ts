import { jwtVerify, SignJWT } from "jose";
import { z } from "zod";
import { idSchema } from "../contracts/index.ts";
import { ApiError } from "./errors.ts";

export const roleSchema = z.enum(["admin", "franchisee", "user"]);
export type Role = z.infer<typeof roleSchema>;
export interface Principal {
  sub: string;
  role: Role;
}

/** What a token must say besides its signature. */
export interface TokenRules {
  /** The longest lifetime a token may claim, in seconds: `exp - iat`, or `exp - now` without `iat`. */
  maxLifetimeS: number;
  /** When set, `iss` must be this. */
  issuer?: string | undefined;
  /** When set, `aud` must be (or contain) this. */
  audience?: string | undefined;
  /** Epoch milliseconds. */
  clock?: () => number;
}

/** An issuer's clock may run this far ahead of ours (`iat` slightly in the future is not an attack). */
const SKEW_S = 60;

const claimsSchema = z.object({ sub: idSchema, role: roleSchema, exp: z.number(), iat: z.number().optional() });

/**
 * Verifies `Authorization: Bearer <JWT>` (HS256, claims sub, role, exp) as the protocol says, and
 * that its lifetime is bounded: a token that claims to live for ages (`exp: 1e300`) is refused,
 * so a leaked one cannot be used forever.
 */
export function authenticator(secret: string, rules: TokenRules = { maxLifetimeS: 30 * 86_400 }) {
  const key = new TextEncoder().encode(secret);
  const clock = rules.clock ?? Date.now;
  return async (header: string | undefined): Promise<Principal> => {
    const m = /^Bearer\s+(\S+)$/i.exec(header ?? "");
    if (!m) throw new ApiError(401, "unauthorized", "missing bearer token");
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(m[1]!, key, {
        algorithms: ["HS256"],
        requiredClaims: ["exp", "sub"],
        currentDate: new Date(clock()),
        ...(rules.issuer ? { issuer: rules.issuer } : {}),
        ...(rules.audience ? { audience: rules.audience } : {}),
      }));
    } catch (e) {
      throw new ApiError(401, "unauthorized", `invalid token: ${(e as Error).message}`, undefined, { cause: e });
    }
    const c = claimsSchema.safeParse(payload);
    if (!c.success) throw new ApiError(401, "unauthorized", "token lacks a valid sub, role or exp");
    const nowS = clock() / 1000;
    const { exp, iat } = c.data;
    if (iat !== undefined && iat > nowS + SKEW_S) throw new ApiError(401, "unauthorized", "invalid token: issued in the future (iat)");
    if (exp - (iat ?? nowS) > rules.maxLifetimeS)
      throw new ApiError(401, "unauthorized", `invalid token: it claims to live longer than ${rules.maxLifetimeS} s`);
    return { sub: c.data.sub, role: c.data.role };
  };
}

/** Issues a token; for the demo sign-in, tests and operators' scripts. */
export async function signToken(
  secret: string,
  sub: string,
  role: Role,
  ttlS = 3600,
  claims: { issuer?: string | undefined; audience?: string | undefined } = {},
  /** When the token is issued (epoch ms): the platform's clock, which tests may set. */
  nowMs = Date.now(),
): Promise<string> {
  const nowS = Math.floor(nowMs / 1000);
  let jwt = new SignJWT({ role })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + ttlS);
  if (claims.issuer) jwt = jwt.setIssuer(claims.issuer);
  if (claims.audience) jwt = jwt.setAudience(claims.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
