import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { audit } from "../audit.ts";
import type { Principal } from "../auth.ts";
import { inTx, type Db, type Tx } from "../db.ts";
import { ApiError, conflict, notFound, paymentRequired } from "../errors.ts";
import { creditPayment, ensureUser, lockWallet, post, wallet } from "../wallet.ts";
import { NotificationRefused, type IncomingNotification, type OrderStatus, type PaymentProvider, type PayoutStatus, type VerifiedNotification } from "./provider.ts";
import {
  closeOrder,
  finishWithdrawal,
  insertOrder,
  insertWithdrawal,
  lastPayer,
  markOrderPaid,
  orderById,
  pendingOrders,
  pendingWithdrawals,
  recordNotification,
  withdrawalById,
  withdrawalByKey,
  type OrderRow,
  type WithdrawalRow,
} from "./store.ts";

export type PaymentService = ReturnType<typeof paymentService>;

/** The public view of an order. */
export function orderView(o: OrderRow) {
  return {
    orderId: o.orderId,
    provider: o.provider,
    userId: o.userId,
    purpose: o.purpose,
    amountCents: o.amountCents,
    status: o.status,
    transactionId: o.transactionId,
    createdAt: o.createdAt,
    expiresAt: o.expiresAt,
    paidAt: o.paidAt,
  };
}

export function withdrawalView(w: WithdrawalRow) {
  return {
    withdrawalId: w.withdrawalId,
    userId: w.userId,
    provider: w.provider,
    amountCents: w.amountCents,
    status: w.status,
    transactionId: w.transactionId,
    failure: w.failure,
    createdAt: w.createdAt,
    doneAt: w.doneAt,
  };
}

/**
 * Paying in through a provider, and withdrawing back through it. Every credit is one transaction
 * with its ledger entry, once per provider transaction id (the ledger reference
 * `pay:<provider>:<transactionId>` and the order's unique transaction id), whether it came by
 * notification, by a repeat of it, or by a query.
 */
export function paymentService(d: {
  db: Db;
  log: Logger;
  clock: () => number;
  providers: PaymentProvider[];
  /** The platform's address as providers reach it. */
  publicUrl: () => string;
  orderTtlMs: number;
}) {
  const { db, log, clock } = d;
  const byName = new Map(d.providers.map((p) => [p.name, p]));
  const provider = (name: string) => {
    const p = byName.get(name);
    if (!p) throw new ApiError(404, "provider_not_found", `no payment provider ${JSON.stringify(name)} is configured`);
    return p;
  };

  /**
   * Credits a paid order once. Answers false when its transaction was credited before. A payment
   * that contradicts the order (another amount, a second transaction) is refused: it is an anomaly
   * for a person to look at, never a silent credit.
   */
  async function settlePaid(tx: Tx, orderId: string, paid: { transactionId: string; amountCents: number; payerRef: string; paidAt: number }): Promise<{ credited: boolean; order: OrderRow }> {
    const order = await orderById(tx, orderId, true);
    if (!order) throw new NotificationRefused(400, "order_not_found", `no order ${orderId}`);
    if (order.status === "paid") {
      if (order.transactionId === paid.transactionId) return { credited: false, order };
      throw new NotificationRefused(400, "order_already_paid", `order ${orderId} was paid by transaction ${order.transactionId}, not ${paid.transactionId}`);
    }
    if (paid.amountCents !== order.amountCents)
      throw new NotificationRefused(400, "amount_mismatch", `order ${orderId} is for ${order.amountCents} cents, the payment says ${paid.amountCents}`);
    // A late payment of an order closed as expired is still money the user paid: credited.
    const next = await markOrderPaid(tx, orderId, paid);
    const credited = await creditPayment(tx, order.userId, order.amountCents, `pay:${order.provider}:${paid.transactionId}`);
    return { credited, order: next };
  }

  /** Asks the provider about a pending order and applies its answer (paid: credit; closed or past its time: close). */
  async function queryAndApply(order: OrderRow): Promise<OrderRow> {
    if (order.status !== "pending") return order;
    let q: OrderStatus;
    try {
      q = await provider(order.provider).queryOrder(order.orderId);
    } catch (err) {
      log.warn({ err, orderId: order.orderId }, "payment order query failed; asked again later");
      return order;
    }
    if (q.status === "paid") {
      const paid = q;
      try {
        const r = await inTx(db, (tx) => settlePaid(tx, order.orderId, paid));
        if (r.credited) log.info({ orderId: order.orderId, transactionId: paid.transactionId, userId: order.userId, amountCents: order.amountCents }, "payment credited by query");
        return r.order;
      } catch (err) {
        if (!(err instanceof NotificationRefused)) throw err;
        log.warn({ orderId: order.orderId, code: err.code, error: err.message }, "provider's answer to an order query refused");
        return order;
      }
    }
    if (q.status === "closed" || clock() > order.expiresAt) {
      await inTx(db, (tx) => closeOrder(tx, order.orderId));
      return (await orderById(db, order.orderId))!;
    }
    return order;
  }

  /** Applies a provider's answer about a payout, once: a failed payout goes back to the balance. */
  async function finishPayout(withdrawalId: string, r: PayoutStatus): Promise<WithdrawalRow> {
    return inTx(db, async (tx) => {
      const w = (await withdrawalById(tx, withdrawalId, true))!;
      if (w.status !== "pending" || r.status === "pending") return w;
      if (r.status === "succeeded") return finishWithdrawal(tx, withdrawalId, { status: "succeeded", transactionId: r.transactionId, at: clock() });
      await lockWallet(tx, w.userId);
      await post(tx, w.userId, "withdrawal_reversal", { balance: w.amountCents }, { reference: withdrawalId });
      log.warn({ withdrawalId, userId: w.userId, reason: r.reason }, "payout failed; the amount is back in the balance");
      return finishWithdrawal(tx, withdrawalId, { status: "failed", failure: r.reason, at: clock() });
    });
  }

  async function sendPayout(w: WithdrawalRow): Promise<WithdrawalRow> {
    let r: PayoutStatus;
    try {
      r = await provider(w.provider).payout({ withdrawalId: w.withdrawalId, payerRef: w.payerRef, amountCents: w.amountCents });
    } catch (err) {
      // Unknown outcome: the reconcile round asks the provider (payouts are idempotent by id there).
      log.warn({ err, withdrawalId: w.withdrawalId }, "payout call failed; its outcome is asked for later");
      return w;
    }
    return finishPayout(w.withdrawalId, r);
  }

  return {
    providers: byName,

    /**
     * A new order for the user to pay in the provider's app (201), or the one created before with
     * the same idempotency key (200). `debt` orders default to the whole debt.
     */
    async createOrder(userId: string, b: { provider: string; purpose: "topup" | "debt"; amountCents?: number | undefined; idempotencyKey: string }) {
      const p = provider(b.provider);
      const now = clock();
      const { order, created } = await inTx(db, async (tx) => {
        await ensureUser(tx, userId);
        const w = await lockWallet(tx, userId);
        let amount = b.amountCents;
        if (b.purpose === "debt") {
          if (w.debtCents === 0 && amount === undefined) throw conflict("no_debt", "there is no postpaid debt to pay");
          amount ??= w.debtCents;
        }
        if (amount === undefined) throw new ApiError(400, "invalid_request", "invalid body", [{ path: "body.amountCents", message: "required for a top-up" }]);
        const r = await insertOrder(tx, {
          orderId: `PO-${randomUUID()}`,
          provider: p.name,
          userId,
          purpose: b.purpose,
          amountCents: amount,
          idempotencyKey: b.idempotencyKey,
          createdAt: now,
          expiresAt: now + d.orderTtlMs,
        });
        if (!r.created && (r.order.amountCents !== amount || r.order.provider !== p.name || r.order.purpose !== b.purpose))
          throw conflict("idempotency_key_reused", `idempotency key ${JSON.stringify(b.idempotencyKey)} created order ${r.order.orderId} with other terms`);
        return r;
      });
      const payParams = await p.createOrder({
        orderId: order.orderId,
        amountCents: order.amountCents,
        description: order.purpose === "debt" ? "Voltvend: pay charging debt" : "Voltvend: wallet top-up",
        notifyUrl: `${d.publicUrl()}/v1/payments/notify/${p.name}`,
        expiresAt: order.expiresAt,
      });
      return { created, order: { ...orderView(order), payParams } };
    },

    /** An order of the principal's; a pending one is first asked about at the provider (its notification may never have come). */
    async getOrder(principal: Principal, orderId: string) {
      const order = await orderById(db, orderId);
      if (!order || (principal.role === "user" && order.userId !== principal.sub)) throw notFound("payment_order", orderId);
      return orderView(await queryAndApply(order));
    },

    /**
     * A provider's notification: verified (signature, age, nonce once), then the order credited
     * once per transaction id. Refusals are logged and recorded, and answered 400 or 401.
     */
    async notify(providerName: string, n: IncomingNotification): Promise<{ credited: boolean; orderId: string }> {
      const p = provider(providerName);
      const now = clock();
      let v: VerifiedNotification | null = null;
      try {
        v = p.verify(n, now);
        const note = v;
        const r = await inTx(db, async (tx) => {
          if (!(await recordNotification(tx, { provider: p.name, accepted: true, nonce: note.nonce, orderId: note.orderId, transactionId: note.transactionId, body: n.body, at: now })))
            throw new NotificationRefused(401, "replayed_notification", "this notification (its nonce) was accepted before: a replay");
          return settlePaid(tx, note.orderId, note);
        });
        if (r.credited) log.info({ orderId: r.order.orderId, transactionId: v.transactionId, userId: r.order.userId, amountCents: r.order.amountCents }, "payment credited");
        return { credited: r.credited, orderId: r.order.orderId };
      } catch (err) {
        if (!(err instanceof NotificationRefused)) throw err;
        log.warn({ provider: p.name, code: err.code, error: err.message, orderId: v?.orderId ?? null }, "payment notification refused");
        await recordNotification(db, { provider: p.name, accepted: false, reason: `${err.code}: ${err.message}`, nonce: v?.nonce ?? null, orderId: v?.orderId ?? null, transactionId: v?.transactionId ?? null, body: n.body, at: now });
        throw new ApiError(err.status, err.code, err.message, undefined, { cause: err });
      }
    },

    /** Queries the provider about orders pending longer than `olderThanMs` and payouts without an answer. */
    async reconcile(olderThanMs: number, limit = 200): Promise<{ ordersChecked: number; ordersPaid: number; ordersClosed: number; payoutsChecked: number }> {
      const before = clock() - olderThanMs;
      const orders = await pendingOrders(db, before, limit);
      let paid = 0;
      let closed = 0;
      for (const o of orders) {
        const after = await queryAndApply(o);
        if (after.status === "paid") paid++;
        if (after.status === "closed") closed++;
      }
      const payouts = await pendingWithdrawals(db, before, limit);
      for (const w of payouts) {
        try {
          await finishPayout(w.withdrawalId, await provider(w.provider).queryPayout(w.withdrawalId));
        } catch (err) {
          log.warn({ err, withdrawalId: w.withdrawalId }, "payout query failed; asked again later");
        }
      }
      return { ordersChecked: orders.length, ordersPaid: paid, ordersClosed: closed, payoutsChecked: payouts.length };
    },

    /**
     * Pays `amountCents` of the user's available balance out to their account at the provider
     * (that of their latest paid order): the ledger entry and the withdrawal commit first, then
     * the payout is sent; a failed payout is reversed. 201 new, 200 a repeat of the key. A
     * withdrawal made by an admin is audited with its reason.
     */
    async withdraw(actor: Principal, userId: string, b: { amountCents: number; idempotencyKey: string; provider?: string | undefined; reason?: string | undefined }) {
      const now = clock();
      const r = await inTx(db, async (tx) => {
        await ensureUser(tx, userId);
        const w = await lockWallet(tx, userId);
        const prior = await withdrawalByKey(tx, userId, b.idempotencyKey);
        if (prior) {
          if (prior.amountCents !== b.amountCents) throw conflict("idempotency_key_reused", `idempotency key ${JSON.stringify(b.idempotencyKey)} withdrew ${prior.amountCents} cents, not ${b.amountCents}`);
          return { created: false, w: prior };
        }
        if (w.debtCents > 0) throw conflict("debt_outstanding", `the wallet owes ${w.debtCents} cents of postpaid fees; pay them before withdrawing`);
        const available = w.balanceCents - w.heldCents;
        if (available < b.amountCents) throw paymentRequired("insufficient_balance", `withdrawing ${b.amountCents} cents needs that much available balance; ${available} available`);
        if (b.provider) provider(b.provider);
        const payer = await lastPayer(tx, userId, b.provider ?? null);
        if (!payer) throw conflict("no_payout_account", "the user has never paid through this provider, so there is no account to pay out to");
        provider(payer.provider);
        const row = await insertWithdrawal(tx, {
          withdrawalId: `WD-${randomUUID()}`,
          userId,
          provider: payer.provider,
          payerRef: payer.payerRef,
          amountCents: b.amountCents,
          idempotencyKey: b.idempotencyKey,
          actor: `${actor.role}:${actor.sub}`,
          createdAt: now,
        });
        await post(tx, userId, "withdrawal", { balance: -b.amountCents }, { reference: row.withdrawalId });
        // A person moving money (the user, or an admin for them): audited either way.
        await audit(tx, {
            actor,
            action: "wallet.withdraw",
            objectType: "user",
            objectId: userId,
            before: { balanceCents: w.balanceCents, heldCents: w.heldCents, debtCents: w.debtCents },
            after: { balanceCents: w.balanceCents - b.amountCents, heldCents: w.heldCents, debtCents: w.debtCents, withdrawalId: row.withdrawalId, amountCents: b.amountCents },
            reason: b.reason ?? null,
            atMs: now,
          });
        return { created: true, w: row };
      });
      const w = r.w.status === "pending" ? await sendPayout(r.w) : r.w;
      return { created: r.created, withdrawal: withdrawalView(w), wallet: (await wallet(db, userId))! };
    },
  };
}
