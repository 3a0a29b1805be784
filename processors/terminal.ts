import type { TerminalInfo } from "../contracts/index.ts";

/**
 * What the host knows of one terminal when a stage steps it: part of every step's config, so that
 * the steps, not the adapters, decide which messages may touch a terminal's state. Data only: the
 * host reads the registry (its KV watch) and its partition, the step decides with them.
 */
export interface TerminalView {
  terminalId: string;
  /** Its registration (gateway, thresholds, status); undefined when not (or no longer) registered. */
  info: TerminalInfo | undefined;
  /**
   * Whether this consumer speaks for it: always, unpartitioned; with lease partitions
   * (docs/scaling.md, "Partitions and takeover"), when its registered gateway falls in this
   * consumer's partition.
   */
  ours: boolean;
  /** How far a reading's `ts` may be ahead of its arrival (`PROCESSOR_MAX_AHEAD_S`). */
  maxAheadMs: number;
}

export type Refusal = "unknown_terminal" | "wrong_gateway" | "future_ts";

/**
 * Why a reading may not touch this terminal's state, or null when it may: its terminal is
 * registered, it came from the registered gateway, and its time is not too far ahead of when the
 * stream stored it (a processor keeps "newest reading time" per terminal, and a reading from the
 * future would hide the real ones until then). The host filters with it before any parsing
 * (and counts the reasons); the steps check it again for readings their adapters fetch themselves.
 */
export function refusal(t: TerminalView, gatewayId: string, ts: number, seenAt: number): Refusal | null {
  if (!t.info) return "unknown_terminal";
  if (t.info.gatewayId !== gatewayId) return "wrong_gateway";
  if (ts > seenAt + t.maxAheadMs) return "future_ts";
  return null;
}

/**
 * Whether this consumer answers a live query for the terminal (`<p>.int.live.<terminalId>`): only
 * for its partition's terminals, so one answer arrives; in the static split, only for those it has
 * heard (any instance may hold the terminal's filter).
 */
export function answersLive(t: TerminalView, partitioned: boolean, heard: boolean): boolean {
  return t.ours && (!partitioned || heard);
}
