import type { Command, Reading, TerminalEvent } from "../../contracts/index.ts";

/** How a simulated terminal behaves; every field can be changed while it runs (`terminal.set`). */
export interface TerminalBehaviour {
  /** The terminal's own identity code, compared with the handshake's `terminalCode`. */
  code: string;
  /** "match" answers honestly, "refuse" always answers match:false, "silent" never answers. */
  handshake: "match" | "refuse" | "silent";
  /** false: power_on is applied but never acknowledged (a lost ack, the harder case for the cloud). */
  powerOnAck: boolean;
  /** false: power_off is applied but never acknowledged. */
  powerOffAck: boolean;
  /** Current drawn while the relay is on. */
  currentA: number;
  voltageV: number;
  /** Current measured while the relay is off (a leak fault when above the profile's maximum). */
  leakA: number;
  /** false: a terminal that vanished: no readings, no events, commands are not received. */
  online: boolean;
  /** Real-time delay before an answer is sent (the command itself takes effect at once). */
  ackDelayMs: number;
  /**
   * true: stops by itself at power_on's `limitWh`/`limitS` and reports `power_off` (limit), as the
   * protocol lets a terminal do; false: only the cloud's power_off stops it (to measure the cloud's
   * own cutoff). @default true
   */
  limits: boolean;
}

export interface TerminalOptions extends Partial<TerminalBehaviour> {
  /** Meter register at creation. @default 100000 */
  energyWh?: number;
}

/** What a terminal needs from its gateway: time, and a way to send an event upstream. */
export interface TerminalLink {
  clock: () => number;
  send: (terminalId: string, event: TerminalEvent) => void;
}

/** Lists kept for tests are capped so a long-running demo fleet does not grow without bound. */
const HISTORY = 10_000;
const push = <T>(list: T[], item: T) => {
  list.push(item);
  if (list.length > HISTORY) list.splice(0, list.length - HISTORY);
};
const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

export class SimTerminal {
  /** Every valid command received while online, in order, repeats included. */
  readonly commands: Command[] = [];
  /** Every event sent, in order, re-sent answers included. */
  readonly events: TerminalEvent[] = [];
  lastReading: Reading | undefined;

  #b: TerminalBehaviour;
  #relay: "on" | "off" = "off";
  #sessionId: string | undefined;
  #seq = 0;
  /** Unrounded register: only what is reported is rounded, so rounding errors never accumulate. */
  #wh: number;
  /** Clock time up to which energy has been added to the register. */
  #integratedTo: number;
  /** The running session's own limits (from its power_on), counted from power-on. */
  #limit: { sessionId: string; startTs: number; startWh: number; limitWh?: number; limitS?: number } | undefined;
  /** A limit stop reached while offline, reported when the terminal is back. */
  #unreported: TerminalEvent | undefined;
  /** The session this terminal last stopped by itself, and where: a later power_off for it is answered with that stop. */
  #stoppedAtLimit: { sessionId: string; ts: number; energyWh: number } | undefined;
  /** cmdId → its answer once prepared, so a repeat is answered identically and never applied twice. */
  #answers = new Map<string, TerminalEvent | undefined>();
  #timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly terminalId: string,
    private readonly link: TerminalLink,
    options: TerminalOptions = {},
  ) {
    const { energyWh = 100_000, ...behaviour } = options;
    this.#b = {
      code: terminalId,
      handshake: "match",
      powerOnAck: true,
      powerOffAck: true,
      currentA: 16.8,
      voltageV: 220,
      leakA: 0,
      online: true,
      ackDelayMs: 0,
      limits: true,
      ...stripUndefined(behaviour),
    };
    this.#wh = energyWh;
    this.#integratedTo = link.clock();
  }

  get behaviour(): Readonly<TerminalBehaviour> {
    return { ...this.#b };
  }
  get code(): string {
    return this.#b.code;
  }
  get online(): boolean {
    return this.#b.online;
  }
  get relay(): "on" | "off" {
    return this.#relay;
  }
  get sessionId(): string | undefined {
    return this.#sessionId;
  }
  /** The seq the next reading will carry. */
  get seq(): number {
    return this.#seq;
  }
  /** The register now, rounded as reported. */
  get energyWh(): number {
    return round(this.#advance(this.link.clock()), 3);
  }

  set(partial: Partial<TerminalBehaviour>): void {
    // Energy so far was drawn under the old current and voltage.
    this.#advance(this.link.clock());
    this.#b = { ...this.#b, ...stripUndefined(partial) };
    if (this.#b.online && this.#unreported) {
      const ev = this.#unreported;
      this.#unreported = undefined;
      this.#send(ev);
    }
  }

  /**
   * A restart: seq starts again at 0 and a `boot` event is sent (if online). By default the
   * contactor drops and the session is forgotten, as with a power cycle; `keepRelay` models a
   * controller reset that leaves the relay and session as they were. The register is kept.
   */
  boot(opts: { keepRelay?: boolean } = {}): void {
    const now = this.link.clock();
    this.#advance(now);
    this.#seq = 0;
    if (!opts.keepRelay) {
      this.#relay = "off";
      this.#sessionId = undefined;
      this.#limit = undefined;
    }
    if (this.#b.online) this.#send({ type: "boot", energyWh: round(this.#wh, 3), ts: now });
  }

  /** A fault: the relay changes without a command (welded contactor, tripped breaker). */
  forceRelay(state: "on" | "off"): void {
    this.#advance(this.link.clock());
    this.#relay = state;
  }

  /** One meter reading at `now`, or undefined while offline. */
  read(now: number = this.link.clock()): Reading | undefined {
    const wh = this.#advance(now);
    if (!this.#b.online) return undefined;
    const currentA = round(this.#current(), 2);
    const voltageV = round(this.#b.voltageV, 2);
    const reading: Reading = {
      ts: now,
      seq: this.#seq++,
      state: this.#relay,
      currentA,
      voltageV,
      powerW: round(currentA * voltageV, 2),
      energyWh: round(wh, 3),
    };
    if (this.#sessionId !== undefined) reading.sessionId = this.#sessionId;
    this.lastReading = reading;
    return reading;
  }

  /** Handles one command; false if the terminal is offline and so never received it. */
  receive(cmd: Command): boolean {
    if (!this.#b.online) return false;
    push(this.commands, cmd);
    const seen = this.#answers.has(cmd.cmdId);
    let answer = this.#answers.get(cmd.cmdId);
    if (!seen) {
      answer = this.#apply(cmd);
      this.#remember(cmd.cmdId, answer);
    } else if (answer === undefined && cmd.type === "handshake") {
      // A handshake changes nothing, so one left unanswered may be answered on a repeat.
      answer = this.#handshakeAnswer(cmd);
      this.#remember(cmd.cmdId, answer);
    }
    if (answer !== undefined && this.#ackEnabled(cmd.type)) this.#answer(answer);
    return true;
  }

  /** Cancels answers still waiting for their delay. */
  close(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  #apply(cmd: Command): TerminalEvent | undefined {
    const now = this.link.clock();
    switch (cmd.type) {
      case "handshake":
        return this.#handshakeAnswer(cmd);
      case "power_on":
        this.#advance(now);
        this.#relay = "on";
        this.#sessionId = cmd.sessionId;
        this.#limit = {
          sessionId: cmd.sessionId,
          startTs: now,
          startWh: this.#wh,
          ...(cmd.limitWh !== undefined ? { limitWh: cmd.limitWh } : {}),
          ...(cmd.limitS !== undefined ? { limitS: cmd.limitS } : {}),
        };
        return { type: "power_on_ack", sessionId: cmd.sessionId, energyWh: round(this.#wh, 3), ts: now };
      case "power_off": {
        // The session was already switched off here at its limit: the answer says when and at what
        // register the relay opened, not when the command came (time after the stop is no session's).
        const stopped = this.#stoppedAtLimit;
        if (stopped && stopped.sessionId === cmd.sessionId && this.#sessionId === undefined)
          return { type: "power_off_ack", sessionId: cmd.sessionId, energyWh: stopped.energyWh, ts: stopped.ts };
        // Always obeyed, whatever session it names: cutting power is the safe side.
        this.#advance(now);
        this.#relay = "off";
        this.#sessionId = undefined;
        this.#limit = undefined;
        return { type: "power_off_ack", sessionId: cmd.sessionId, energyWh: round(this.#wh, 3), ts: now };
      }
    }
  }

  #handshakeAnswer(cmd: Command & { type: "handshake" }): TerminalEvent | undefined {
    if (this.#b.handshake === "silent") return undefined;
    const match = this.#b.handshake === "match" && cmd.terminalCode === this.#b.code;
    return { type: "handshake_result", sessionId: cmd.sessionId, terminalCode: this.#b.code, match, ts: this.link.clock() };
  }

  #ackEnabled(type: Command["type"]): boolean {
    if (type === "power_on") return this.#b.powerOnAck;
    if (type === "power_off") return this.#b.powerOffAck;
    return true;
  }

  #remember(cmdId: string, answer: TerminalEvent | undefined): void {
    this.#answers.set(cmdId, answer);
    // Map keeps insertion order: forget the oldest commands first.
    if (this.#answers.size > HISTORY) this.#answers.delete(this.#answers.keys().next().value!);
  }

  #answer(event: TerminalEvent): void {
    if (this.#b.ackDelayMs <= 0) return this.#send(event);
    const t = setTimeout(() => {
      this.#timers.delete(t);
      // A terminal that vanished meanwhile does not get its answer out.
      if (this.#b.online) this.#send(event);
    }, this.#b.ackDelayMs);
    this.#timers.add(t);
  }

  #send(event: TerminalEvent): void {
    push(this.events, event);
    this.link.send(this.terminalId, event);
  }

  #current(): number {
    return this.#relay === "on" ? this.#b.currentA : this.#b.leakA;
  }

  /**
   * Adds V×I×dt for the clock time since the last call; a clock that went back adds nothing.
   * A session's limit reached meanwhile switches the relay off at the exact moment it was reached,
   * so the register stops there, whenever the terminal is next looked at.
   */
  #advance(now: number): number {
    const stop = this.#limitMoment();
    if (stop !== undefined && stop.at <= now) {
      this.#integrate(stop.at);
      if (stop.wh !== undefined) this.#wh = stop.wh; // exactly the limit, free of the float steps
      this.#stopAtLimit(stop.at);
    }
    this.#integrate(now);
    return this.#wh;
  }

  #integrate(to: number): void {
    if (to > this.#integratedTo) {
      this.#wh += (this.#b.voltageV * this.#current() * (to - this.#integratedTo)) / 3_600_000;
      this.#integratedTo = to;
    }
  }

  /** When the running session reaches its limitWh or limitS at the present current, if ever. */
  #limitMoment(): { at: number; wh?: number } | undefined {
    const l = this.#limit;
    if (!l || this.#relay !== "on" || !this.#b.limits) return undefined;
    let best: { at: number; wh?: number } | undefined;
    if (l.limitS !== undefined) best = { at: Math.max(this.#integratedTo, l.startTs + l.limitS * 1000) };
    const whPerMs = (this.#b.voltageV * this.#current()) / 3_600_000;
    if (l.limitWh !== undefined && whPerMs > 0) {
      const wh = l.startWh + l.limitWh;
      const at = this.#integratedTo + Math.max(0, wh - this.#wh) / whPerMs;
      if (!best || at < best.at) best = { at, wh };
    }
    return best;
  }

  /** The terminal's own stop: relay off, session forgotten, and the protocol 1.1 power_off event. */
  #stopAtLimit(at: number): void {
    const sessionId = this.#limit!.sessionId;
    this.#relay = "off";
    this.#sessionId = undefined;
    this.#limit = undefined;
    const ev: TerminalEvent = { type: "power_off", sessionId, reason: "limit", energyWh: round(this.#wh, 3), ts: Math.ceil(at) };
    this.#stoppedAtLimit = { sessionId, ts: ev.ts, energyWh: ev.energyWh };
    if (this.#b.online) this.#send(ev);
    else this.#unreported = ev;
  }
}

/** `{a: undefined}` must not override a default (exactOptionalPropertyTypes is off). */
function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
