// A Clock (src/runtime/clock.ts) that only moves when the test says so; timers fire in
// deadline order as time is advanced past them.
import type { Clock, TimerHandle } from '../../src/runtime/clock';

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  /** The delay asked for, for tests that check how early a wake-up aims. */
  ms: number;
}

export class FakeClock implements Clock {
  t = 1000;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.pending.set(id, { at: this.t + ms, seq: id, fn, ms });
    return id as unknown as TimerHandle;
  }

  clearTimer(h: TimerHandle): void {
    this.pending.delete(h as unknown as number);
  }

  /** Timers armed now: [absolute deadline, requested delay]. */
  armed(): { at: number; ms: number }[] {
    return [...this.pending.values()].sort((a, b) => a.at - b.at).map((p) => ({ at: p.at, ms: p.ms }));
  }

  /** Moves to `to`, firing every timer due on the way at its own deadline. */
  advanceTo(to: number): void {
    for (;;) {
      const next = [...this.pending.values()].sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next || next.at > to) break;
      this.pending.delete(next.seq);
      this.t = next.at;
      next.fn();
    }
    this.t = to;
  }

  advance(ms: number): void {
    this.advanceTo(this.t + ms);
  }
}
