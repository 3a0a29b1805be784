import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import type { webcrypto } from "node:crypto";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authenticator, type IdentityProvider } from "../../control/internal.ts";

// Beside the shared secret: tokens of the operator's identity provider, verified against its
// JWKS (served here by a tiny HTTP server, as a provider publishes it), with iss and aud.
const SECRET = "shared-secret-0123456789";
let server: Server;
let idp: IdentityProvider;
let priv: webcrypto.CryptoKey;
let other: webcrypto.CryptoKey;
let fetches = 0;

beforeAll(async () => {
  const kp = await generateKeyPair("RS256", { extractable: true });
  priv = kp.privateKey;
  other = (await generateKeyPair("RS256")).privateKey;
  const jwk = { ...(await exportJWK(kp.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
  server = createServer((req, res) => {
    fetches++;
    if (req.url !== "/.well-known/jwks.json") res.writeHead(404).end();
    else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  idp = { jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`, issuer: "https://id.example.cn/", audience: "voltvend", roleClaim: "vv_role" };
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const idpToken = (o: { key?: webcrypto.CryptoKey; iss?: string; aud?: string; claims?: Record<string, unknown>; ttl?: number } = {}) =>
  new SignJWT({ vv_role: "admin", ...o.claims })
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setSubject("ops-1")
    .setIssuer(o.iss ?? idp.issuer)
    .setAudience(o.aud ?? idp.audience)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (o.ttl ?? 3600))
    .sign(o.key ?? priv);

describe("tokens of the operator's identity provider (JWKS)", () => {
  const auth = () => authenticator(SECRET, { maxLifetimeS: 86_400 }, idp);

  it("accepts a token signed by a key of the JWKS, with the role from the configured claim", async () => {
    expect(await auth()(`Bearer ${await idpToken()}`)).toEqual({ sub: "ops-1", role: "admin" });
    expect(fetches).toBeGreaterThan(0);
  });

  it.each([
    ["another key", { key: undefined as unknown as webcrypto.CryptoKey }, /signature/],
    ["another issuer", { iss: "https://evil.example/" }, /iss/],
    ["another audience", { aud: "someone-else" }, /aud/],
    ["no role", { claims: { vv_role: undefined } }, /role/],
    ["an unknown role", { claims: { vv_role: "root" } }, /role/],
    ["too long a life", { ttl: 365 * 86_400 }, /longer/],
  ])("refuses a token with %s (401)", async (_what, o, msg) => {
    const opts = _what === "another key" ? { key: other } : o;
    await expect(auth()(`Bearer ${await idpToken(opts)}`)).rejects.toMatchObject({ status: 401, message: expect.stringMatching(msg) });
  });

  it("still takes the shared secret's tokens, and never an HS256 token signed with the provider's public key", async () => {
    const hs = await new SignJWT({ role: "user" }).setProtectedHeader({ alg: "HS256" }).setSubject("U1").setIssuedAt().setExpirationTime("1h").sign(new TextEncoder().encode(SECRET));
    expect(await auth()(`Bearer ${hs}`)).toEqual({ sub: "U1", role: "user" });
    const forged = await new SignJWT({ role: "admin" }).setProtectedHeader({ alg: "HS256" }).setSubject("x").setIssuedAt().setExpirationTime("1h").sign(new TextEncoder().encode("not-the-secret-at-all"));
    await expect(auth()(`Bearer ${forged}`)).rejects.toMatchObject({ status: 401 });
  });

  it("without a provider configured, an RS256 token is refused", async () => {
    await expect(authenticator(SECRET)(`Bearer ${await idpToken()}`)).rejects.toMatchObject({ status: 401 });
  });

  it("a provider that cannot be reached is 503 unavailable, not a bad token", async () => {
    const down = authenticator(SECRET, { maxLifetimeS: 86_400 }, { ...idp, jwksUrl: "http://127.0.0.1:9/jwks.json" });
    await expect(down(`Bearer ${await idpToken()}`)).rejects.toMatchObject({ status: 503, code: "unavailable" });
  });
});

describe("npm run token", () => {
  it("prints a token the platform accepts, with the role, subject and lifetime asked for", async () => {
    const { stdout } = await promisify(execFile)("npx", ["tsx", "cli/token.ts", "--role", "admin", "--sub", "ops-1", "--ttl", "8h"], {
      env: { ...process.env, VEND_JWT_SECRET: SECRET },
    });
    const token = stdout.trim();
    expect(await authenticator(SECRET)(`Bearer ${token}`)).toEqual({ sub: "ops-1", role: "admin" });
    const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString());
    expect(claims.exp - claims.iat).toBe(8 * 3600);
  });

  it("refuses an unknown role", async () => {
    await expect(promisify(execFile)("npx", ["tsx", "cli/token.ts", "--role", "root", "--sub", "ops-1"], { env: { ...process.env, VEND_JWT_SECRET: SECRET } })).rejects.toMatchObject({
      stderr: expect.stringMatching(/--role/),
    });
  });
});
