import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, SignJWT, type JWTPayload } from "jose";
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

/** The operator's identity provider: its published keys, and what its tokens must say. */
export interface IdentityProvider {
  jwksUrl: string;
  issuer: string;
  audience: string;
  /** The claim that holds the role. @default "role" */
  roleClaim?: string | undefined;
}

/** Asymmetric algorithms an identity provider signs with; HS256 stays the shared secret's. */
const IDP_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

/** An issuer's clock may run this far ahead of ours (`iat` slightly in the future is not an attack). */
const SKEW_S = 60;

const claimsSchema = z.object({ sub: idSchema, role: roleSchema, exp: z.number(), iat: z.number().optional() });

/**
 * Verifies `Authorization: Bearer <JWT>` (HS256, claims sub, role, exp) as the protocol says, and
 * that its lifetime is bounded: a token that claims to live for ages (`exp: 1e300`) is refused,
 * so a leaked one cannot be used forever.
 */
export function authenticator(secret: string, rules: TokenRules = { maxLifetimeS: 30 * 86_400 }, idp?: IdentityProvider) {
  const key = new TextEncoder().encode(secret);
  const clock = rules.clock ?? Date.now;
  // Fetched on first use, cached, fetched again for an unknown key id (a rotation), at most every 30 s.
  const jwks = idp ? createRemoteJWKSet(new URL(idp.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 }) : null;
  return async (header: string | undefined): Promise<Principal> => {
    const m = /^Bearer\s+(\S+)$/i.exec(header ?? "");
    if (!m) throw new ApiError(401, "unauthorized", "missing bearer token");
    let payload: JWTPayload;
    try {
      const alg = decodeProtectedHeader(m[1]!).alg;
      // The algorithm picks the key: HS256 the shared secret, an asymmetric one the provider's keys.
      // Each path accepts only its own algorithms, so a token cannot pass one key off as the other.
      if (alg !== "HS256" && jwks && idp) {
        ({ payload } = await jwtVerify(m[1]!, jwks, {
          algorithms: IDP_ALGORITHMS,
          requiredClaims: ["exp", "sub"],
          currentDate: new Date(clock()),
          issuer: idp.issuer,
          audience: idp.audience,
        }));
        const roleClaim = idp.roleClaim ?? "role";
        if (roleClaim !== "role") payload = { ...payload, role: payload[roleClaim] };
      } else {
        ({ payload } = await jwtVerify(m[1]!, key, {
          algorithms: ["HS256"],
          requiredClaims: ["exp", "sub"],
          currentDate: new Date(clock()),
          ...(rules.issuer ? { issuer: rules.issuer } : {}),
          ...(rules.audience ? { audience: rules.audience } : {}),
        }));
      }
    } catch (e) {
      // A provider whose keys cannot be fetched is an outage, not a bad token: 503, retry later.
      const code = (e as { code?: string }).code;
      if (code === "ERR_JWKS_TIMEOUT" || (e instanceof TypeError && /fetch/i.test(e.message)) || code === "ERR_JOSE_GENERIC")
        throw new ApiError(503, "unavailable", "the identity provider's keys cannot be fetched; retry later", undefined, { cause: e });
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
