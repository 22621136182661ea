// The fake clock of the in-process benches (rx-path.ts, tx-path.ts).
import type { Clock, TimerHandle } from '../src/runtime/clock';

/** A clock moved by the bench whose timers fire as it passes them, allocating nothing else. */
export class BenchClock implements Clock {
  t = 1000;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  /** No timer is due before this: advance() looks at the timers only then. */
  private soonest = Infinity;
  setTimer(fn: () => void, ms: number): TimerHandle {
    this.timers.set(++this.seq, { at: this.t + ms, fn });
    this.soonest = Math.min(this.soonest, this.t + ms);
    return this.seq as unknown as TimerHandle;
  }
  clearTimer(h: TimerHandle): void {
    this.timers.delete(h as unknown as number);
  }
  advance(ms: number): void {
    this.t += ms;
    if (this.t < this.soonest) return;
    this.soonest = Infinity;
    for (const x of this.timers.values()) this.soonest = Math.min(this.soonest, x.at);
    if (this.t < this.soonest) return;
    for (const [id, x] of this.timers)
      if (x.at <= this.t) {
        this.timers.delete(id);
        x.fn();
      }
  }
}
