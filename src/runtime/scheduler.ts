// One timer for every group of the daemon (issue 11): each group keeps one entry with a window
// [earliest, latest] (engine/group.ts: earliestDeadline, nextDeadline) in a min-heap on its
// latest time, and the single timer wakes for the most urgent. One wake-up serves every entry
// whose window has opened by then, so masters whose advertisements fall due within the
// engine's slack share it; a backup's window is a single instant and is never served early.
// The scheduler only decides when a group's timer event is delivered; what it does is the
// engine's.
import { systemClock, type Clock, type TimerHandle } from './clock';

/** One group's place in the scheduler; `run` delivers its timer event. */
export class ScheduledTask {
  /** Index in the heap, -1 when not scheduled. */
  slot = -1;
  earliest = 0;
  latest = 0;
  /** Insertion order, so that equal deadlines are served in the order they were set. */
  seq = 0;
  /** Taken off the heap by the current wake-up and not moved or cancelled since. */
  due = false;
  constructor(
    readonly scheduler: Scheduler,
    readonly run: () => void,
  ) {}

  get scheduled(): boolean {
    return this.slot >= 0;
  }

  /** Arms or moves the task: it runs once, at a wake-up between `earliest` and `latest`. */
  set(earliest: number, latest: number): void {
    this.scheduler.set(this, earliest, latest);
  }

  cancel(): void {
    this.scheduler.cancel(this);
  }
}

/**
 * A wait longer than this aims early: the kernel lets a long epoll_wait() expire up to ~0.1 %
 * late (3 ms on a 3 s dead time), so an exact deadline (a backup's) is aimed at a little early
 * and the short re-arm for the remainder lands within a millisecond. A task with a window
 * (a master's advertisement) is aimed at its latest time: late by a millisecond is harmless.
 */
const EARLY_AIM_AFTER_MS = 20;

function earlyAim(remaining: number): number {
  return remaining > EARLY_AIM_AFTER_MS ? Math.ceil(remaining / 500) + 1 : 0;
}

/**
 * Children per heap node. Thousands of masters each leave the heap's top once a second and
 * come back at its bottom: a binary heap sifted through twelve levels of cold task objects per
 * advertisement (issue 11: ~9 % of a 4080-group master's profile). Four children per node make
 * it six levels, and the keys compared live in typed arrays, a node's children in one or two
 * cache lines: 7.7 % of the profile (docs/performance.md). Eight measured no better in-process.
 */
const ARITY = 4;

export class Scheduler {
  private static readonly shared = new WeakMap<Clock, Scheduler>();

  /** The scheduler every group on `clock` shares: one timer per process on the system clock. */
  static for(clock: Clock): Scheduler {
    let s = Scheduler.shared.get(clock);
    if (s === undefined) {
      s = new Scheduler(clock);
      Scheduler.shared.set(clock, s);
    }
    return s;
  }

  /**
   * The heap: tasks, and per place the latest time and order the task had when placed there. A
   * later move only updates the task's `latest` and `seq`; its place is corrected when it
   * reaches the top (settleTop), so a key is never later than the truth.
   */
  private readonly heap: ScheduledTask[] = [];
  private keys = new Float64Array(64);
  private keySeqs = new Float64Array(64);
  private seq = 0;
  private timer: TimerHandle | undefined;
  private timerAt: number | null = null;
  private serving = false;
  /** Wake-ups so far, and tasks they served: how well deadlines are batched. */
  wakeups = 0;
  served = 0;

  constructor(private readonly clock: Clock = systemClock) {}

  task(run: () => void): ScheduledTask {
    return new ScheduledTask(this, run);
  }

  get size(): number {
    return this.heap.length;
  }

  set(t: ScheduledTask, earliest: number, latest: number): void {
    if (t.slot >= 0 && t.earliest === earliest && t.latest === latest) return;
    t.due = false;
    const from = Math.min(earliest, latest);
    // A backup's master-down deadline moves later with every advertisement it hears: the task
    // keeps its place and is re-placed once, when it reaches the top, instead of leaving and
    // re-entering the heap per packet (issue 11: the heap was 9 % of a 4080-group backup).
    if (t.slot >= 0 && latest >= t.latest && from >= t.earliest) {
      t.earliest = from;
      t.latest = latest;
      t.seq = this.seq++;
      if (latest - from > this.widest) this.widest = latest - from;
      return;
    }
    if (t.slot >= 0) this.remove(t);
    t.earliest = from;
    t.latest = latest;
    t.seq = this.seq++;
    this.push(t);
    this.arm();
  }

  cancel(t: ScheduledTask): void {
    t.due = false;
    if (t.slot < 0) return;
    this.remove(t);
    this.arm();
  }

  private wake(): void {
    this.timer = undefined;
    this.timerAt = null;
    this.wakeups++;
    const now = this.clock.now();
    // Every task whose window has opened; they all lie within the widest window of the top.
    const due: ScheduledTask[] = [];
    const notYet: ScheduledTask[] = [];
    for (let top = this.settleTop(); top !== undefined; top = this.settleTop()) {
      if (top.latest - now > this.widest) break;
      this.remove(top);
      if (top.earliest <= now) {
        top.due = true;
        due.push(top);
      } else notYet.push(top);
    }
    for (const t of notYet) this.push(t);
    this.serving = true;
    // One group's failure must not cost the others their wake-up: it is rethrown after all ran.
    let failed: { error: unknown } | null = null;
    for (const t of due) {
      // An earlier task's run may have rescheduled or cancelled this one.
      if (!t.due) continue;
      t.due = false;
      this.served++;
      try {
        t.run();
      } catch (error) {
        failed ??= { error };
      }
    }
    this.serving = false;
    this.arm();
    if (failed !== null) throw failed.error;
  }

  /** The widest window seen: how far past now a task served now can be due. */
  private widest = 0;

  private arm(): void {
    if (this.serving) return;
    const top = this.settleTop();
    if (top === undefined) {
      this.clearTimer();
      return;
    }
    const now = this.clock.now();
    const remaining = top.latest - now;
    const early = top.earliest === top.latest ? earlyAim(remaining) : 0;
    // Never 0: a task the engine did not find due waits at least a millisecond, not a spin.
    const delay = Math.max(1, Math.ceil(remaining) - early);
    const at = now + delay;
    if (this.timer !== undefined && this.timerAt !== null && this.timerAt <= at && this.timerAt > now) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = this.clock.setTimer(() => this.wake(), delay);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = null;
  }

  /** The true first task: tasks moved later since they were placed go to their place first. */
  private settleTop(): ScheduledTask | undefined {
    const h = this.heap;
    while (h.length > 0) {
      const top = h[0];
      if (this.keys[0] === top.latest && this.keySeqs[0] === top.seq) return top;
      this.keys[0] = top.latest;
      this.keySeqs[0] = top.seq;
      this.down(0);
    }
    return undefined;
  }

  private push(t: ScheduledTask): void {
    if (t.latest - t.earliest > this.widest) this.widest = t.latest - t.earliest;
    const i = this.heap.length;
    if (i === this.keys.length) {
      const keys = new Float64Array(i * 2);
      keys.set(this.keys);
      this.keys = keys;
      const seqs = new Float64Array(i * 2);
      seqs.set(this.keySeqs);
      this.keySeqs = seqs;
    }
    this.heap.push(t);
    this.keys[i] = t.latest;
    this.keySeqs[i] = t.seq;
    t.slot = i;
    this.up(i);
  }

  private remove(t: ScheduledTask): void {
    const h = this.heap;
    const i = t.slot;
    const end = h.length - 1;
    const last = h.pop()!;
    t.slot = -1;
    if (i === end) return;
    h[i] = last;
    this.keys[i] = this.keys[end];
    this.keySeqs[i] = this.keySeqs[end];
    last.slot = i;
    this.down(i);
    this.up(last.slot);
  }

  /** Moves the task at `i` towards the top while it comes before its parent. */
  private up(i: number): void {
    const { heap: h, keys, keySeqs: seqs } = this;
    const t = h[i];
    const k = keys[i];
    const q = seqs[i];
    while (i > 0) {
      const p = Math.floor((i - 1) / ARITY);
      const pk = keys[p];
      if (!(k < pk || (k === pk && q < seqs[p]))) break;
      h[i] = h[p];
      keys[i] = pk;
      seqs[i] = seqs[p];
      h[i].slot = i;
      i = p;
    }
    h[i] = t;
    keys[i] = k;
    seqs[i] = q;
    t.slot = i;
  }

  /** Moves the task at `i` towards the bottom while one of its children comes before it. */
  private down(i: number): void {
    const { heap: h, keys, keySeqs: seqs } = this;
    const n = h.length;
    const t = h[i];
    const k = keys[i];
    const q = seqs[i];
    for (;;) {
      const first = i * ARITY + 1;
      if (first >= n) break;
      const end = Math.min(first + ARITY, n);
      let m = first;
      let mk = keys[first];
      let mq = seqs[first];
      for (let c = first + 1; c < end; c++) {
        const ck = keys[c];
        if (ck < mk || (ck === mk && seqs[c] < mq)) {
          m = c;
          mk = ck;
          mq = seqs[c];
        }
      }
      if (!(mk < k || (mk === k && mq < q))) break;
      h[i] = h[m];
      keys[i] = mk;
      seqs[i] = mq;
      h[i].slot = i;
      i = m;
    }
    h[i] = t;
    keys[i] = k;
    seqs[i] = q;
    t.slot = i;
  }
}
