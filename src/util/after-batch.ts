// Work that must not delay the current batch of timers and packets. In a mass failover,
// formatting 255 log lines before the last group has sent its advertisement would delay that
// group by the sum of them, so transition logs wait until the event loop's check phase.

export class AfterBatch {
  private readonly pending: (() => void)[] = [];

  constructor(private readonly schedule: (flush: () => void) => void = (f) => setImmediate(f)) {}

  defer(work: () => void): void {
    if (this.pending.length === 0) this.schedule(() => this.flush());
    this.pending.push(work);
  }

  flush(): void {
    for (const w of this.pending.splice(0)) w();
  }
}
