import rateLimit from "@fastify/rate-limit";
import type { FastifyReply, FastifyRequest } from "fastify";
import { isIPv6 } from "node:net";
import { rateLimited } from "../errors.ts";
import type { App } from "./server.ts";

/** Requests allowed per window; see RATE_LIMIT_* in contracts/config.ts. */
export interface RateLimitOptions {
  windowMs: number;
  /** Per client address, for each public call. */
  publicMax: number;
  /** Per user or franchisee, over all authenticated calls. */
  principalMax: number;
  /** Per admin. */
  adminMax: number;
}

export type Limit = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/**
 * The client a public limit counts: its address, or for IPv6 its /64 (one subscriber usually holds
 * a whole /64, so counting single addresses would let one client take 2^64 budgets).
 */
export function clientKey(ip: string): string {
  if (!isIPv6(ip) || ip.toLowerCase().startsWith("::ffff:")) return ip;
  const [head = "", tail = ""] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = ip.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

/**
 * Rate limits over @fastify/rate-limit's counters (in memory, per control instance: behind a load
 * balancer each instance counts its own share). A request past a limit answers 429 `rate_limited`
 * in the protocol's error shape, with `Retry-After`.
 */
export async function rateLimits(app: App, o: RateLimitOptions): Promise<{ publicCall: (name: string) => Limit; principal: Limit }> {
  await app.register(rateLimit, { global: false });
  const enforce = (check: ReturnType<App["createRateLimit"]>, what: string): Limit => async (req, reply) => {
    const r = await check(req);
    if (r.isAllowed || !r.isExceeded) return;
    void reply.header("retry-after", r.ttlInSeconds);
    throw rateLimited(`too many requests ${what}: at most ${r.max} per ${r.timeWindow / 1000} s; retry in ${r.ttlInSeconds} s`);
  };
  // One counter per public call, so that loading a terminal's page does not use up its reports.
  const publicCall = (name: string) =>
    enforce(app.createRateLimit({ max: o.publicMax, timeWindow: o.windowMs, keyGenerator: (req) => clientKey(req.ip) }), `to ${name} from this address`);
  const principal = enforce(
    app.createRateLimit({
      timeWindow: o.windowMs,
      max: (req) => (req.principal?.role === "admin" ? o.adminMax : o.principalMax),
      keyGenerator: (req) => `${req.principal?.role}:${req.principal?.sub}`,
    }),
    "of this token's subject",
  );
  return { publicCall, principal };
}
