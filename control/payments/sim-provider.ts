import { createPublicKey, createSign, createVerify, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from "node:crypto";
import { z } from "zod";
import { NotificationRefused, type IncomingNotification, type OrderStatus, type PaymentProvider, type PayoutStatus, type ProviderOrder, type VerifiedNotification } from "./provider.ts";

/** A notification as the provider sends it: headers and the exact body bytes they sign. */
export interface SignedNotification {
  headers: Record<string, string>;
  body: string;
}

/** The body of the simulated provider's notification (WeChat Pay v3's fields, in clear). */
const notificationSchema = z.object({
  id: z.string().min(1).max(64),
  eventType: z.literal("TRANSACTION.SUCCESS"),
  resource: z.object({
    orderId: z.string().min(1).max(128),
    transactionId: z.string().min(1).max(128),
    tradeState: z.literal("SUCCESS"),
    amountCents: z.number().int().positive().max(100_000_000),
    payerRef: z.string().min(1).max(128),
    paidAt: z.number().int().nonnegative(),
  }),
});

/**
 * The built-in simulated provider: both halves of a wallet like WeChat Pay v3. The platform's half
 * (the PaymentProvider methods) verifies notifications with the provider's public key only, as an
 * adapter for a real provider does with the provider's certificate. The provider's half (`pay`,
 * `notification`, `deliver`) stands in for the user paying in the provider's app and the
 * provider's servers calling back: it signs every notification with its private key, RSA-SHA256
 * over `<timestamp>\n<nonce>\n<body>\n` (WeChat Pay v3's message), headers `pay-timestamp`
 * (seconds), `pay-nonce`, `pay-serial` (which key) and `pay-signature` (base64).
 *
 * Its order book lives in the process (one per platform process): it is for the demo and tests.
 */
export class SimPaymentProvider implements PaymentProvider {
  readonly name = "sim";
  readonly serial = randomBytes(8).toString("hex").toUpperCase();
  readonly publicKeyPem: string;
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;
  readonly #orders = new Map<string, { order: ProviderOrder; paid: Extract<OrderStatus, { status: "paid" }> | null }>();
  readonly #payouts = new Map<string, PayoutStatus>();
  /** Payouts to these payer accounts fail (a closed account), for tests of the reversal. */
  readonly failingPayers = new Set<string>();

  constructor(private readonly o: { clock: () => number; maxAgeMs: number }) {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.#privateKey = privateKey;
    this.publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
    this.#publicKey = createPublicKey(this.publicKeyPem);
  }

  async createOrder(o: ProviderOrder): Promise<Record<string, string>> {
    if (!this.#orders.has(o.orderId)) this.#orders.set(o.orderId, { order: o, paid: null });
    const prepayId = `sim-prepay-${o.orderId}`;
    return { prepayId, payUrl: `simpay://pay?prepay_id=${encodeURIComponent(prepayId)}` };
  }

  verify(n: IncomingNotification, nowMs: number): VerifiedNotification {
    const ts = n.headers["pay-timestamp"];
    const nonce = n.headers["pay-nonce"];
    const signature = n.headers["pay-signature"];
    const serial = n.headers["pay-serial"];
    if (!ts || !nonce || !signature || !serial) throw new NotificationRefused(401, "invalid_signature", "pay-timestamp, pay-nonce, pay-serial and pay-signature are required");
    if (serial !== this.serial) throw new NotificationRefused(401, "invalid_signature", `unknown key serial ${JSON.stringify(serial.slice(0, 64))}`);
    const v = createVerify("RSA-SHA256");
    v.update(`${ts}\n${nonce}\n${n.body}\n`);
    let ok = false;
    try {
      ok = v.verify(this.#publicKey, signature, "base64");
    } catch {
      ok = false;
    }
    if (!ok) throw new NotificationRefused(401, "invalid_signature", "the signature does not verify");
    if (!/^\d{1,12}$/.test(ts) || Math.abs(nowMs - Number(ts) * 1000) > this.o.maxAgeMs)
      throw new NotificationRefused(401, "stale_notification", `the notification's timestamp is more than ${this.o.maxAgeMs / 1000} s from now (a replay)`);
    let parsed: z.infer<typeof notificationSchema>;
    try {
      parsed = notificationSchema.parse(JSON.parse(n.body));
    } catch (e) {
      throw new NotificationRefused(400, "invalid_notification", `the notification's body is not a payment notification: ${(e as Error).message.slice(0, 200)}`, { cause: e });
    }
    const r = parsed.resource;
    return { nonce, orderId: r.orderId, transactionId: r.transactionId, amountCents: r.amountCents, payerRef: r.payerRef, paidAt: r.paidAt };
  }

  async queryOrder(orderId: string): Promise<OrderStatus> {
    const o = this.#orders.get(orderId);
    if (!o) return { status: "closed" };
    if (o.paid) return o.paid;
    return this.o.clock() > o.order.expiresAt ? { status: "closed" } : { status: "pending" };
  }

  async payout(o: { withdrawalId: string; payerRef: string; amountCents: number }): Promise<PayoutStatus> {
    const before = this.#payouts.get(o.withdrawalId);
    if (before) return before;
    const r: PayoutStatus = this.failingPayers.has(o.payerRef)
      ? { status: "failed", reason: "the payer's account cannot receive payouts" }
      : { status: "succeeded", transactionId: `simpo-${randomUUID()}` };
    this.#payouts.set(o.withdrawalId, r);
    return r;
  }

  async queryPayout(withdrawalId: string): Promise<PayoutStatus> {
    return this.#payouts.get(withdrawalId) ?? { status: "failed", reason: "no such payout" };
  }

  // ---- The provider's half: the user's app and the provider's servers. ----

  /**
   * The user pays the order in the provider's app: the provider records the payment (one
   * transaction id, whatever happens next) and, unless `notify` is false (a notification that
   * never came), calls the order's notify URL. Returns the provider's notification and the
   * platform's answer to it.
   */
  async pay(orderId: string, o: { payerRef?: string; notify?: boolean; amountCents?: number } = {}): Promise<{ notification: SignedNotification; answer: { status: number; body: unknown } | null }> {
    const entry = this.#orders.get(orderId);
    if (!entry) throw new Error(`the simulated provider has no order ${orderId}`);
    entry.paid ??= {
      status: "paid",
      transactionId: `simtx-${randomUUID()}`,
      amountCents: o.amountCents ?? entry.order.amountCents,
      payerRef: o.payerRef ?? `sim-payer-${orderId}`,
      paidAt: this.o.clock(),
    };
    const notification = this.notification(orderId);
    const answer = o.notify === false ? null : await this.deliver(notification, entry.order.notifyUrl);
    return { notification, answer };
  }

  /** A freshly signed notification of a paid order (what a provider sends again until it is acknowledged). */
  notification(orderId: string): SignedNotification {
    const paid = this.#orders.get(orderId)?.paid;
    if (!paid) throw new Error(`order ${orderId} is not paid at the simulated provider`);
    const body = JSON.stringify({
      id: randomUUID(),
      eventType: "TRANSACTION.SUCCESS",
      resource: { orderId, transactionId: paid.transactionId, tradeState: "SUCCESS", amountCents: paid.amountCents, payerRef: paid.payerRef, paidAt: paid.paidAt },
    });
    return this.sign(body);
  }

  /** Signs a body as the provider does, stamped now (or at `atMs`). */
  sign(body: string, atMs = this.o.clock()): SignedNotification {
    const ts = String(Math.floor(atMs / 1000));
    const nonce = randomBytes(16).toString("hex");
    const s = createSign("RSA-SHA256");
    s.update(`${ts}\n${nonce}\n${body}\n`);
    return {
      headers: { "content-type": "application/json", "pay-timestamp": ts, "pay-nonce": nonce, "pay-serial": this.serial, "pay-signature": s.sign(this.#privateKey, "base64") },
      body,
    };
  }

  /** Posts a notification to the platform, as the provider's servers do. */
  async deliver(n: SignedNotification, url: string): Promise<{ status: number; body: unknown }> {
    const res = await fetch(url, { method: "POST", headers: n.headers, body: n.body });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON: kept as text */
    }
    return { status: res.status, body };
  }
}
