import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { FaultChange, Subjects, TerminalInfo } from "../../contracts/index.ts";
import { publishNow } from "../outbox.ts";
import type { Buckets } from "../../ingest/index.ts";
import { inTx, type Db } from "../db.ts";
import { ApiError, forbidden, notFound } from "../errors.ts";
import { allTerminalIds, terminalById, terminalByQr, type TerminalRecord } from "../registry.ts";
import { audit } from "../audit.ts";
import { acknowledge, applyChange, closeByHand, faultById, lockedSafetyFault, reportScanFailure, toEvent, type Out } from "./store.ts";

export function terminalInfo(t: TerminalRecord): TerminalInfo {
  const p = t.profile;
  return {
    terminalId: t.terminalId,
    gatewayId: t.gatewayId,
    franchiseeId: t.franchiseeId,
    regionId: t.regionId,
    profile: { onCurrentA: p.onCurrentA, offCurrentMaxA: p.offCurrentMaxA, voltageV: p.voltageV, faultDebounceS: p.faultDebounceS, faultClearS: p.faultClearS },
    // The fault stage watches for silence only what is in service (no offline faults otherwise).
    status: t.retiredAt !== null ? "retired" : t.maintenance ? "maintenance" : "active",
  };
}

/** Fault use cases of the control service: storing the processor's decisions, users' reports, acknowledgements. */
export function faultService(d: { db: Db; nc: NatsConnection; subjects: Subjects; buckets: Buckets; clock: () => number; scanWindowMs: number; log: Logger }) {
  const { db, subjects: s } = d;
  const js = jetstream(d.nc);
  // The outbox is the guarantee; publishing right after the commit is the speed. What fails here
  // is left for the ticker's relay.
  const publish = (out: Out) => publishNow(db, js, out).catch((err) => d.log.warn({ err }, "fault publish deferred to the outbox relay"));
  // One info line per fault change, with the ids an operator searches by (the gateway is the
  // terminal's): after the publish and not awaited, so it never delays a fault or its consumer.
  const logChanges = async (out: Out) => {
    for (const o of out) {
      const f = o.payload as { faultId?: string; kind?: string; status?: string; count?: number; terminalId?: string; franchiseeId?: string };
      if (!f?.faultId || !f.terminalId) continue;
      const t = await terminalById(db, f.terminalId).catch(() => null);
      d.log.info(
        { faultId: f.faultId, kind: f.kind, status: f.status, count: f.count, terminalId: f.terminalId, gatewayId: t?.gatewayId ?? null, franchiseeId: f.franchiseeId },
        "fault changed",
      );
    }
  };
  const flush = async (out: Out) => {
    await publish(out);
    void logChanges(out);
  };
  return {
    /** A change decided by the fault processor; idempotent (a redelivered open is a repeat of an open fault, so it is skipped). */
    async onChange(c: FaultChange): Promise<void> {
      await flush(await applyChange(db, s, c));
    },

    async reportScanFailure(userId: string, b: { qr?: string | undefined; terminalId?: string | undefined; reason: string }): Promise<{ faultId: string }> {
      const t = b.terminalId ? await terminalById(db, b.terminalId) : await terminalByQr(db, b.qr!);
      if (!t) throw new ApiError(404, "terminal_not_found", "no terminal carries this QR code or id");
      // A terminal out of service raises no scan-failure faults: the user is told why it cannot charge.
      if (t.retiredAt !== null) throw new ApiError(409, "terminal_retired", `terminal ${t.terminalId} is retired`);
      if (t.maintenance) throw new ApiError(409, "terminal_maintenance", `terminal ${t.terminalId} is out of service for maintenance: ${t.maintenance.reason}`);
      const out: Out = [];
      const f = await inTx(db, (tx) => {
        out.length = 0;
        return reportScanFailure(tx, s, { terminalId: t.terminalId, at: d.clock(), reason: b.reason, userId, windowMs: d.scanWindowMs }, out);
      });
      await flush(out);
      return { faultId: f!.faultId };
    },

    async acknowledge(franchiseeId: string, faultId: string): Promise<ReturnType<typeof toEvent>> {
      const f = await faultById(db, faultId);
      if (!f) throw notFound("fault", faultId);
      if (f.franchiseeId !== franchiseeId) throw forbidden("this fault is on another franchisee's terminal");
      if (f.status !== "open") throw new ApiError(409, "fault_not_open", `fault ${faultId} is ${f.status}`);
      const out: Out = [];
      const r = await inTx(db, (tx) => {
        out.length = 0;
        return acknowledge(tx, s, { faultId, franchiseeId, at: d.clock() }, out);
      });
      if (!r) throw new ApiError(409, "fault_not_open", `fault ${faultId} changed meanwhile`);
      await flush(out);
      return toEvent(r);
    },

    /**
     * The franchisee closes an unresolved fault by hand with a note (a scan-failure report that was
     * a user's mistake): resolved, published as any resolution is, and audited, in one transaction.
     * A safety fault is refused (409 `safety_fault`): it gates charging, and only readings clear it.
     */
    async closeByHand(franchiseeId: string, faultId: string, note: string): Promise<ReturnType<typeof toEvent>> {
      const f = await faultById(db, faultId);
      if (!f) throw notFound("fault", faultId);
      if (f.franchiseeId !== franchiseeId) throw forbidden("this fault is on another franchisee's terminal");
      if (f.status === "resolved") throw new ApiError(409, "fault_resolved", `fault ${faultId} is resolved already`);
      const out: Out = [];
      const at = d.clock();
      const r = await inTx(db, async (tx) => {
        out.length = 0;
        // A leak or over-current stays until the fault processor sees the current back in range:
        // it keeps the fault open in its own state and raises no new one while the condition holds
        // without a break, so a hand-closed leak would let charges start on a leaking terminal.
        if (await lockedSafetyFault(tx, faultId))
          throw new ApiError(409, "safety_fault", `fault ${faultId} is a safety fault (a leak or over-current): it resolves when the current is back in range, not by hand`);
        const closed = await closeByHand(tx, s, { faultId, franchiseeId, note, at }, out);
        if (closed)
          await audit(tx, {
            actor: { sub: franchiseeId, role: "franchisee" },
            action: "fault.close",
            objectType: "fault",
            objectId: faultId,
            before: toEvent(f),
            after: toEvent(closed),
            reason: note,
            atMs: at,
          });
        return closed;
      });
      if (!r) throw new ApiError(409, "fault_resolved", `fault ${faultId} was resolved meanwhile`);
      await flush(out);
      return toEvent(r);
    },

    /** Keeps the fault processor's view of a terminal (thresholds, franchisee) current. */
    async publishTerminal(terminalId: string): Promise<void> {
      const t = await terminalById(db, terminalId);
      if (t) await d.buckets.terminals.put(terminalId, JSON.stringify(terminalInfo(t)));
    },

    /** At start: every registered terminal into the bucket (idempotent, cheap next to a restart). */
    async publishAllTerminals(): Promise<number> {
      const ids = await allTerminalIds(db);
      for (let i = 0; i < ids.length; i += 200) await Promise.all(ids.slice(i, i + 200).map((id) => this.publishTerminal(id)));
      return ids.length;
    },
  };
}
export type FaultService = ReturnType<typeof faultService>;
