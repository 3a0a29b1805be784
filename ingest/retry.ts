import type { Logger } from "pino";
import { unavailableDependency } from "./outage.ts";

export interface RetryOptions {
  /** The wait after the first failure; it doubles with each failure in a row. @default 1000 */
  baseMs?: number;
  /** The longest wait, however many failures. @default 5000 */
  maxMs?: number;
}

/**
 * The back-off of one retrying loop (a round, a consumer's batch, a subscription), and its log.
 * A failure because PostgreSQL or NATS is down (see unavailableDependency) is a warning at the 1st,
 * 2nd, 4th, 8th… failure in a row, so a long outage does not flood the log; any other failure is
 * an error each time. The first success after failures says how long it took.
 */
export class RetryBackoff {
  private failures = 0;
  private since = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(
    private readonly log: Logger,
    /** What failed, as the log says it ("command tick", "usage rollup"). */
    private readonly what: string,
    o: RetryOptions = {},
  ) {
    this.baseMs = o.baseMs ?? 1000;
    this.maxMs = o.maxMs ?? 5000;
  }

  /** Failures in a row so far. */
  get count(): number {
    return this.failures;
  }

  /** Records a failure, logs it, and returns how long to wait before the next try. */
  failed(err: unknown, fields: Record<string, unknown> = {}): number {
    if (this.failures === 0) this.since = Date.now();
    this.failures++;
    const waitMs = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.failures - 1, 20));
    const dependency = unavailableDependency(err);
    if (!dependency) this.log.error({ err, ...fields, failures: this.failures, retryInMs: waitMs }, `${this.what} failed`);
    else if ((this.failures & (this.failures - 1)) === 0)
      this.log.warn({ dependency, error: (err as Error).message, ...fields, failures: this.failures, retryInMs: waitMs }, `${this.what} failed: ${dependency} unavailable; retrying`);
    return waitMs;
  }

  /** Records a success: the next failure waits the base time again. */
  succeeded(): void {
    if (this.failures === 0) return;
    this.log.info({ failures: this.failures, afterMs: Date.now() - this.since }, `${this.what} recovered`);
    this.failures = 0;
  }
}
