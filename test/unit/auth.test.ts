import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { authenticator, signToken } from "../../control/internal.ts";

const SECRET = "unit-secret-0123456789abcdef";
// Near the real time, so that the old verifier (which read the real clock) judged these tokens too.
const NOW_S = Math.floor(Date.now() / 1000);
const clock = () => NOW_S * 1000;
const DAY = 86_400;

function token(c: { exp: number; iat?: number; iss?: string; aud?: string }) {
  let j = new SignJWT({ role: "user" }).setProtectedHeader({ alg: "HS256" }).setSubject("U1").setExpirationTime(c.exp);
  if (c.iat !== undefined) j = j.setIssuedAt(c.iat);
  if (c.iss) j = j.setIssuer(c.iss);
  if (c.aud) j = j.setAudience(c.aud);
  return j.sign(new TextEncoder().encode(SECRET));
}
const verdict = async (auth: ReturnType<typeof authenticator>, t: string) =>
  auth(`Bearer ${t}`).then(
    () => "ok",
    (e: { status: number }) => e.status,
  );

describe("token lifetime", () => {
  const auth = authenticator(SECRET, { maxLifetimeS: 30 * DAY, clock });
  it.each([
    ["exp 1e300 without iat", { exp: 1e300 }, 401],
    ["exp 1e300 with iat now", { exp: 1e300, iat: NOW_S }, 401],
    ["iat far in the future makes any exp look short", { exp: 1e300, iat: 1e300 - 10 }, 401],
    ["iat 2 minutes ahead", { exp: NOW_S + 3600, iat: NOW_S + 120 }, 401],
    ["31 days from iat", { exp: NOW_S + 31 * DAY, iat: NOW_S }, 401],
    ["31 days from now, no iat", { exp: NOW_S + 31 * DAY }, 401],
    ["30 days from iat, exactly", { exp: NOW_S + 30 * DAY, iat: NOW_S }, "ok"],
    ["issued 20 days ago for 30 days", { exp: NOW_S + 10 * DAY, iat: NOW_S - 20 * DAY }, "ok"],
    ["iat 30 s ahead (clock skew)", { exp: NOW_S + 3600, iat: NOW_S + 30 }, "ok"],
    ["expired", { exp: NOW_S - 1, iat: NOW_S - 3600 }, 401],
  ] as const)("%s: %s", async (_name, claims, want) => {
    expect(await verdict(auth, await token(claims))).toBe(want);
  });

  it("the lifetime cap is configurable", async () => {
    const short = authenticator(SECRET, { maxLifetimeS: 3600, clock });
    expect(await verdict(short, await token({ exp: NOW_S + 3601, iat: NOW_S }))).toBe(401);
    expect(await verdict(short, await token({ exp: NOW_S + 3600, iat: NOW_S }))).toBe("ok");
  });
});

describe("issuer and audience", () => {
  const auth = authenticator(SECRET, { maxLifetimeS: 30 * DAY, issuer: "https://id.example", audience: "voltvend", clock });
  const exp = NOW_S + 3600;
  it.each([
    ["both right", { exp, iss: "https://id.example", aud: "voltvend" }, "ok"],
    ["no iss", { exp, aud: "voltvend" }, 401],
    ["another iss", { exp, iss: "https://evil.example", aud: "voltvend" }, 401],
    ["no aud", { exp, iss: "https://id.example" }, 401],
    ["another aud", { exp, iss: "https://id.example", aud: "other" }, 401],
  ] as const)("%s", async (_name, claims, want) => {
    expect(await verdict(auth, await token(claims))).toBe(want);
  });

  it("are not required when not configured", async () => {
    expect(await verdict(authenticator(SECRET, { maxLifetimeS: DAY, clock }), await token({ exp, iss: "anyone" }))).toBe("ok");
  });

  it("signToken issues them when asked (the demo sign-in does, with JWT_ISSUER and JWT_AUDIENCE)", async () => {
    const real = authenticator(SECRET, { maxLifetimeS: DAY, issuer: "https://id.example", audience: "voltvend" });
    expect(await verdict(real, await signToken(SECRET, "U1", "user", 60, { issuer: "https://id.example", audience: "voltvend" }))).toBe("ok");
    expect(await verdict(real, await signToken(SECRET, "U1", "user", 60))).toBe(401);
  });
});
