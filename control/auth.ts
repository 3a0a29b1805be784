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

const claimsSchema = z.object({ sub: idSchema, role: roleSchema, exp: z.number() });

/** Verifies `Authorization: Bearer <JWT>` (HS256, claims sub, role, exp) as the protocol says. */
export function authenticator(secret: string) {
  const key = new TextEncoder().encode(secret);
  return async (header: string | undefined): Promise<Principal> => {
    const m = /^Bearer\s+(\S+)$/i.exec(header ?? "");
    if (!m) throw new ApiError(401, "unauthorized", "missing bearer token");
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(m[1]!, key, { algorithms: ["HS256"], requiredClaims: ["exp", "sub"] }));
    } catch (e) {
      throw new ApiError(401, "unauthorized", `invalid token: ${(e as Error).message}`);
    }
    const c = claimsSchema.safeParse(payload);
    if (!c.success) throw new ApiError(401, "unauthorized", "token lacks a valid sub, role or exp");
    return { sub: c.data.sub, role: c.data.role };
  };
}

/** Issues a token; for the demo sign-in, tests and operators' scripts. */
export async function signToken(secret: string, sub: string, role: Role, ttlS = 3600): Promise<string> {
  return new SignJWT({ role })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
    .sign(new TextEncoder().encode(secret));
}
