/**
 * Per-terminal deadlines in a binary heap: a stage looks only at the terminals whose deadline has
 * come, so a fleet of idle terminals costs nothing per second (docs/scaling.md).
 *
 * Each terminal has at most one deadline. Moving it later (every reading moves a silence deadline
 * later) only updates a map: the heap keeps the earlier entry, and when that entry comes up it is
 * pushed again at the later time. So a reading costs a map write, not a heap push, and the heap
 * holds about one entry per terminal with a deadline.
 */
export class Deadlines {
  private readonly due = new Map<string, number>();
  /** The time each terminal's (one live) heap entry is at. */
  private readonly queued = new Map<string, number>();
  private readonly heap: { at: number; id: string }[] = [];

  /** Sets (or clears, with null) a terminal's deadline. */
  set(id: string, at: number | null): void {
    if (at === null) {
      this.due.delete(id);
      return;
    }
    this.due.set(id, at);
    const q = this.queued.get(id);
    if (q === undefined || at < q) {
      this.queued.set(id, at);
      this.push({ at, id });
    }
  }

  get(id: string): number | undefined {
    return this.due.get(id);
  }

  get size(): number {
    return this.due.size;
  }

  /** Removes and returns the terminals whose deadline is at or before `now`, earliest first. */
  takeDue(now: number): string[] {
    const out: string[] = [];
    while (this.heap.length && this.heap[0]!.at <= now) {
      const e = this.pop();
      // A stale entry: an earlier one replaced it.
      if (this.queued.get(e.id) !== e.at) continue;
      this.queued.delete(e.id);
      const d = this.due.get(e.id);
      if (d === undefined) continue;
      if (d > now) {
        // Moved later since it was queued: queue it again at its time.
        this.queued.set(e.id, d);
        this.push({ at: d, id: e.id });
        continue;
      }
      this.due.delete(e.id);
      out.push(e.id);
    }
    return out;
  }

  private push(e: { at: number; id: string }): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= e.at) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  private pop(): { at: number; id: string } {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && h[r]!.at < h[l]!.at ? r : l;
        if (h[c]!.at >= last.at) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
