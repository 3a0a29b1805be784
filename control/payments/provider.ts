/**
 * The platform's side of a payment provider, in the shape China's wallets use (WeChat Pay v3,
 * Alipay): the platform creates an order, the user pays it in the provider's app, the provider
 * calls back with a signed notification, and a query answers for an order whose notification never
 * came. Payouts send balance back to the payer's account. A WeChat Pay or Alipay adapter is one
 * file implementing this interface (docs/sessions-and-money.md, "Paying in").
 */
export interface PaymentProvider {
  /** The path segment of its notification URL (`/v1/payments/notify/<name>`) and the `provider` of orders. */
  readonly name: string;
  /**
   * Registers the order with the provider; answers what the app hands to the provider's SDK to
   * open the payment (WeChat: the prepay id and its signed parameters; Alipay: the order string).
   */
  createOrder(o: ProviderOrder): Promise<Record<string, string>>;
  /**
   * Checks a notification exactly as received (the raw body: the signature covers its bytes) and
   * returns what it says. Throws NotificationRefused: 401 for a signature that does not verify or
   * a timestamp outside the allowed age (a replay), 400 for a body that cannot be read.
   */
  verify(n: IncomingNotification, nowMs: number): VerifiedNotification;
  /** The provider's answer about an order (for orders whose notification never came). */
  queryOrder(orderId: string): Promise<OrderStatus>;
  /** Sends `amountCents` to the payer's account; idempotent by withdrawalId at the provider. */
  payout(o: { withdrawalId: string; payerRef: string; amountCents: number }): Promise<PayoutStatus>;
  /** The provider's answer about a payout (for one whose answer was lost). */
  queryPayout(withdrawalId: string): Promise<PayoutStatus>;
}

export interface ProviderOrder {
  orderId: string;
  amountCents: number;
  description: string;
  /** Where the provider sends its notifications for this order. */
  notifyUrl: string;
  expiresAt: number;
}

export interface IncomingNotification {
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
  body: string;
}

/** A payment the provider says succeeded. */
export interface VerifiedNotification {
  /** Unique per notification sent: the same nonce twice is a replay. */
  nonce: string;
  orderId: string;
  transactionId: string;
  amountCents: number;
  /** The payer's account at the provider (openid, buyer id): where withdrawals go. */
  payerRef: string;
  paidAt: number;
}

export type OrderStatus =
  | { status: "pending" }
  | { status: "closed" }
  | { status: "paid"; transactionId: string; amountCents: number; payerRef: string; paidAt: number };

export type PayoutStatus = { status: "pending" } | { status: "succeeded"; transactionId: string } | { status: "failed"; reason: string };

/** A notification refused at the edge; logged and recorded, answered with its status. */
export class NotificationRefused extends Error {
  override name = "NotificationRefused";
  constructor(
    readonly status: 400 | 401,
    readonly code: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
