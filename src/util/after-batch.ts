// Work that must not delay the current batch of timers and packets. In a mass failover,
// formatting 255 log lines before the last group has sent its advertisement would delay that
// group by the sum of them, so transition logs wait until the event loop's check phase.
// Thousands at once (a 4080-group takeover) would still block the loop for the time it takes
// to write them all, holding up the address changes' netlink ACKs and the address record's
// write: each turn runs at most PER_TURN of them, in order, and the rest wait for the next
// turn (docs/operations.md, "Mass failover").

/** Deferred items run per turn of the event loop. */
export const AFTER_BATCH_PER_TURN = 64;

export class AfterBatch {
  private pending: (() => void)[] = [];
  private scheduled = false;

  constructor(
    private readonly schedule: (run: () => void) => void = (f) => setImmediate(f),
    private readonly perTurn = AFTER_BATCH_PER_TURN,
  ) {}

  defer(work: () => void): void {
    this.pending.push(work);
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(() => this.run());
  }

  /** Runs everything deferred so far, now. */
  flush(): void {
    const all = this.pending;
    this.pending = [];
    for (const w of all) w();
  }

  /** One turn's share; the next turn is booked before any item runs. */
  private run(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const now = this.pending.splice(0, this.perTurn);
    if (this.pending.length > 0) {
      this.scheduled = true;
      this.schedule(() => this.run());
    }
    for (const w of now) w();
  }
}
