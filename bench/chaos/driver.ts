import { signToken } from "../../control/index.ts";
import type { Fleet } from "./fleet.ts";

/** The flat tariff of the run: one period, so a fee can be recomputed from registers and duration alone. */
export const TARIFF = { energyCentsPerKwh: 150, timeCentsPerHour: 36 };

/** One HTTP answer, kept to count what callers saw during each fault. */
export interface Answer {
  at: number;
  path: string;
  status: number; // 0: no answer (connection refused, timeout)
}

export interface DriverOptions {
  url: string;
  jwtSecret: string;
  fleet: Fleet;
  /** New charge requests per second across the fleet. @default 3 */
  rate?: number;
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const between = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/**
 * Users charging through the HTTP API: prepaid users topped up generously, postpaid users with a
 * large credit, and postpaid users with a few cents of credit (cut `credit_exhausted`) who top up
 * now and then to pay their debt. Targets of energy, duration and amount.
 */
export class Driver {
  readonly answers: Answer[] = [];
  readonly started: { sessionId: string; at: number; terminalId: string }[] = [];
  #admin = "";
  #tokens = new Map<string, string>();
  #timers: NodeJS.Timeout[] = [];
  #qrs: string[] = [];
  #topups = 0;
  readonly users = {
    prepaid: Array.from({ length: 40 }, (_, i) => `UP${String(i + 1).padStart(2, "0")}`),
    postpaid: Array.from({ length: 15 }, (_, i) => `UC${String(i + 1).padStart(2, "0")}`),
    tight: Array.from({ length: 10 }, (_, i) => `UT${String(i + 1).padStart(2, "0")}`),
  };

  constructor(readonly o: DriverOptions) {}

  async call(method: string, path: string, body?: unknown, token = this.#admin): Promise<{ status: number; body: any }> {
    let status = 0;
    let parsed: any;
    try {
      const r = await fetch(this.o.url + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        body: body !== undefined ? JSON.stringify(body) : null,
        signal: AbortSignal.timeout(5000),
      });
      status = r.status;
      const text = await r.text();
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      status = status || 0;
    }
    this.answers.push({ at: Date.now(), path: path.replace(/\/[A-Z][A-Za-z0-9_-]*(?=\/|$)/g, "/:id"), status });
    return { status, body: parsed };
  }

  async seed(): Promise<void> {
    this.#admin = await signToken(this.o.jwtSecret, "chaos-admin", "admin", 86_400);
    const ok = async (p: Promise<{ status: number; body: any }>) => {
      const r = await p;
      if (r.status >= 300 || r.status === 0) throw new Error(`seed failed: ${r.status} ${JSON.stringify(r.body)}`);
    };
    await ok(this.call("PUT", "/v1/admin/regions/R1", { name: "Region 1", timezone: "Asia/Shanghai" }));
    await ok(this.call("PUT", "/v1/admin/franchisees/FR1", { name: "Franchisee 1" }));
    await ok(this.call("PUT", "/v1/admin/regions/R1/tariff", { effectiveFrom: 0, periods: [{ start: "00:00", end: "24:00", ...TARIFF }] }));
    for (const gw of this.o.fleet.gateways) await ok(this.call("PUT", `/v1/admin/gateways/${gw.gatewayId}`, { regionId: "R1" }));
    const ids = [...this.o.fleet.home.keys()];
    for (let i = 0; i < ids.length; i += 20)
      await Promise.all(
        ids.slice(i, i + 20).map((t) =>
          ok(this.call("PUT", `/v1/admin/terminals/${t}`, { qr: `qr-${t}`, gatewayId: this.o.fleet.home.get(t)!, regionId: "R1", franchiseeId: "FR1" })),
        ),
      );
    this.#qrs = ids.map((t) => `qr-${t}`);
    for (const u of this.users.prepaid) {
      await ok(this.call("PUT", `/v1/admin/users/${u}`, { creditLimitCents: 0 }));
      await ok(this.call("POST", `/v1/admin/users/${u}/topups`, { amountCents: 1_000_000, reference: `seed-${u}` }));
    }
    for (const u of this.users.postpaid) await ok(this.call("PUT", `/v1/admin/users/${u}`, { creditLimitCents: 100_000 }));
    for (const u of this.users.tight) await ok(this.call("PUT", `/v1/admin/users/${u}`, { creditLimitCents: 5 }));
    for (const u of [...this.users.prepaid, ...this.users.postpaid, ...this.users.tight]) this.#tokens.set(u, await signToken(this.o.jwtSecret, u, "user", 86_400));
  }

  /** Starts users arriving; returns when the first sessions run. */
  start(): void {
    const every = 1000 / (this.o.rate ?? 3);
    this.#timers.push(setInterval(() => void this.#arrive(), every));
    // Tight-credit users pay their debt now and then (a top-up settles debt first).
    this.#timers.push(setInterval(() => void this.#payDebts(), 15_000));
  }

  async #arrive(): Promise<void> {
    const idle = [...this.o.fleet.terminals.values()].filter((t) => t.relay === "off" && t.sessionId === undefined);
    if (idle.length === 0) return;
    const t = pick(idle);
    const kind = Math.random();
    const [user, payment] =
      kind < 0.65 ? [pick(this.users.prepaid), "prepaid"] : kind < 0.85 ? [pick(this.users.postpaid), "postpaid"] : [pick(this.users.tight), "postpaid"];
    const target = pick([{ energyWh: between(5, 30) }, { durationS: between(8, 40) }, { amountCents: between(1, 4) }]);
    const r = await this.call("POST", "/v1/charge-requests", { qr: `qr-${t.terminalId}`, target, payment }, this.#tokens.get(user));
    if (r.status === 201) this.started.push({ sessionId: r.body.sessionId, at: Date.now(), terminalId: t.terminalId });
  }

  async #payDebts(): Promise<void> {
    for (const u of this.users.tight) await this.call("POST", `/v1/admin/users/${u}/topups`, { amountCents: 10, reference: `pay-${u}-${++this.#topups}` });
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  get qrs(): readonly string[] {
    return this.#qrs;
  }
}
