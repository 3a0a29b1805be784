/**
 * Every NATS name the platform uses, derived from one prefix so that two platforms with different
 * prefixes share a server without touching each other (protocol: Operations).
 */
export interface Subjects {
  readonly prefix: string;
  tel(gatewayId: string, terminalId: string): string;
  telBatch(gatewayId: string): string;
  evt(gatewayId: string, terminalId: string): string;
  cmd(gatewayId: string, terminalId: string): string;
  fault(franchiseeId: string, terminalId: string): string;
  dlq(gatewayId: string): string;
  /** Internal: a cutoff decided by the cutoff processor for the control service. */
  cutoff(terminalId: string): string;
  /** Internal: a fault change decided by the fault processor for the control service. */
  faultChange(terminalId: string): string;
  /** Internal: a session's meter from the cutoff processor, what the control service bills from. */
  meter(sessionId: string): string;
  /** Results: a finished session's record (flow 111 copies it to the backup store). */
  sessionRecord(terminalId: string): string;
  /** The backup store's copy of a subject. */
  backup(subject: string): string;
  /** Internal, core NATS: live updates of one session (state changes, progress) for SSE. */
  sessionUpdates(sessionId: string): string;
  /** Internal, core NATS request: a terminal's live state, answered from the fault stage's memory (docs/scaling.md). */
  liveQuery(terminalId: string): string;
  /** A franchisee's daily package (steps 109-110), kept in the PACKAGES stream. */
  pkg(franchiseeId: string): string;
  readonly wild: {
    tel: string;
    telBatch: string;
    evt: string;
    dlq: string;
    fault: string;
    cutoff: string;
    faultChange: string;
    pkg: string;
    liveQuery: string;
  };
  readonly streams: { telemetry: string; events: string; dlq: string; control: string; faults: string; results: string; backup: string; packages: string };
  readonly buckets: { arms: string; meters: string; live: string; backupProgress: string; terminals: string; faultState: string; leases: string };
  consumer(name: string): string;
}

export const prefixPattern = /^[A-Za-z0-9_-]{1,32}$/;

export function subjects(prefix: string): Subjects {
  if (!prefixPattern.test(prefix)) throw new Error(`invalid VEND_PREFIX ${JSON.stringify(prefix)}`);
  // One subject token, so no prefix can reach into another platform's subjects, and stream,
  // consumer and bucket names can carry it unchanged (case kept: `vend` and `VEND` stay apart).
  return {
    prefix,
    tel: (g, t) => `${prefix}.tel.${g}.${t}`,
    telBatch: (g) => `${prefix}.telb.${g}`,
    evt: (g, t) => `${prefix}.evt.${g}.${t}`,
    cmd: (g, t) => `${prefix}.cmd.${g}.${t}`,
    fault: (f, t) => `${prefix}.fault.${f}.${t}`,
    dlq: (g) => `${prefix}.dlq.${g}`,
    cutoff: (t) => `${prefix}.ctl.cutoff.${t}`,
    faultChange: (t) => `${prefix}.ctl.fault.${t}`,
    meter: (sessionId) => `${prefix}.ctl.meter.${sessionId}`,
    sessionRecord: (t) => `${prefix}.rec.session.${t}`,
    backup: (subject) => `${prefix}.bak.${subject}`,
    sessionUpdates: (s) => `${prefix}.int.session.${s}`,
    pkg: (f) => `${prefix}.pkg.${f}`,
    liveQuery: (t) => `${prefix}.int.live.${t}`,
    wild: {
      tel: `${prefix}.tel.*.*`,
      telBatch: `${prefix}.telb.*`,
      evt: `${prefix}.evt.*.*`,
      dlq: `${prefix}.dlq.*`,
      fault: `${prefix}.fault.*.*`,
      cutoff: `${prefix}.ctl.cutoff.*`,
      faultChange: `${prefix}.ctl.fault.*`,
      pkg: `${prefix}.pkg.*`,
      liveQuery: `${prefix}.int.live.*`,
    },
    streams: {
      telemetry: `${prefix}_TELEMETRY`,
      events: `${prefix}_EVENTS`,
      dlq: `${prefix}_DLQ`,
      control: `${prefix}_CONTROL`,
      faults: `${prefix}_FAULTS`,
      results: `${prefix}_RESULTS`,
      backup: `${prefix}_BACKUP`,
      packages: `${prefix}_PACKAGES`,
    },
    buckets: {
      arms: `${prefix}_arms`,
      meters: `${prefix}_meters`,
      live: `${prefix}_live`,
      backupProgress: `${prefix}_backup_progress`,
      terminals: `${prefix}_terminals`,
      faultState: `${prefix}_faultstate`,
      leases: `${prefix}_leases`,
    },
    consumer: (c) => `${prefix}_${c}`,
  };
}

/** Splits `<prefix>.<kind>.<a>.<b>` into its trailing tokens, given the prefix. */
export function subjectTokens(prefix: string, subject: string): string[] {
  if (!subject.startsWith(prefix + ".")) return [];
  return subject.slice(prefix.length + 1).split(".");
}
