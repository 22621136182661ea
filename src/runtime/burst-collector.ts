// After a burst of transitions (the daemon's start, a mass takeover), one full garbage
// collection once things are quiet. A burst allocates for thousands of groups at once (log
// lines, address requests, events) and everything it allocates lives past the young
// generation's collections, into the old one; the steady state after it allocates too little
// for V8 to collect the old generation again for minutes, so a 4080-group daemon held 35–70 MB
// of that garbage in some runs and not in others (docs/performance.md, issue 11). The
// collection stops the event loop for ~30 ms at 4080 groups, as V8's own old-generation
// collections do for 3–20 ms; below BURST_TRANSITIONS a burst leaves too little to be worth it.
import type { Clock, TimerHandle } from './clock';

/** Transitions that make a burst worth a collection. */
export const BURST_TRANSITIONS = 512;
/** How long without a transition ends a burst: longer than a dead time's elections. */
export const BURST_QUIET_MS = 5000;

export class BurstCollector {
  private count = 0;
  private lastAt = 0;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly collect: (() => void) | null,
    private readonly clock: Clock,
    private readonly onCollected: (transitions: number, ms: number) => void = () => {},
  ) {}

  /** One transition: cheap, no timer is moved per call. */
  note(): void {
    if (this.collect === null) return;
    this.count++;
    this.lastAt = this.clock.now();
    if (this.count >= BURST_TRANSITIONS && this.timer === undefined) this.arm(BURST_QUIET_MS);
  }

  close(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = this.clock.setTimer(() => this.check(), ms);
  }

  private check(): void {
    this.timer = undefined;
    const quietFor = this.clock.now() - this.lastAt;
    if (quietFor < BURST_QUIET_MS) {
      this.arm(BURST_QUIET_MS - quietFor);
      return;
    }
    const transitions = this.count;
    this.count = 0;
    const t0 = this.clock.now();
    this.collect?.();
    this.onCollected(transitions, this.clock.now() - t0);
  }
}
