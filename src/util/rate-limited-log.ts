// One warning per kind per period, with a count of what was held back: a peer with the wrong
// password, or a send path that fails every second, must not flood the journal.

/** Lines of the same kind are written once per this period. */
export const RATE_LIMIT_PERIOD_MS = 10_000;

export class RateLimitedLog<K> {
  private readonly last = new Map<K, { at: number; suppressed: number }>();

  constructor(
    private readonly write: (line: string) => void,
    private readonly now: () => number,
    private readonly periodMs = RATE_LIMIT_PERIOD_MS,
  ) {}

  /** Writes `line` unless a line of this kind went out less than a period ago. */
  report(kind: K, line: string): void {
    const t = this.now();
    const last = this.last.get(kind);
    if (last && t - last.at < this.periodMs) {
      last.suppressed++;
      return;
    }
    const more = last && last.suppressed > 0 ? ` (${last.suppressed} more since last report)` : '';
    this.last.set(kind, { at: t, suppressed: 0 });
    this.write(`${line}${more}`);
  }
}
