// A fault that lasts (a peer with the wrong password, an interface that refuses every send, a
// local client hammering the control socket) repeats the same event every second or faster:
// logging each one buries everything else, so each kind of event is written once per period
// with the number of events left out since the previous line.
import { performance } from 'node:perf_hooks';

/** One line per key and period: at 10 s an operator still sees a fault start within seconds. */
export const LOG_PERIOD_MS = 10_000;

export class RateLimitedLog<K> {
  private readonly last = new Map<K, { at: number; suppressed: number }>();

  constructor(
    private readonly periodMs: number = LOG_PERIOD_MS,
    /** Monotonic milliseconds; injectable so that callers with a fake clock stay consistent. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Calls `write` for the first event of `key`, then for the first event at least a period
   * after the last line written for it, passing `more`: '' or ' (N more since last report)'.
   * Other events are only counted. Returns whether `write` was called.
   */
  report(key: K, write: (more: string) => void): boolean {
    const t = this.now();
    const last = this.last.get(key);
    if (last && t - last.at < this.periodMs) {
      last.suppressed++;
      return false;
    }
    const more = last && last.suppressed > 0 ? ` (${last.suppressed} more since last report)` : '';
    this.last.set(key, { at: t, suppressed: 0 });
    write(more);
    return true;
  }
}
