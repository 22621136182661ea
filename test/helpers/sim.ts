// A deterministic discrete-event simulation of CARP or VRRPv3 nodes on one shared segment, driving the
// pure engine with a virtual clock: random loss, partitions, kills and restarts, all seeded.
import {
  GroupParams,
  GroupState,
  initialState,
  nextDeadline,
  step,
  masterDownMs,
  advertSlackMs,
  steadyAdvert,
  steadyDeadline,
  steadyTimer,
  steadyAdvertAt,
  afterSteadyTimers,
  Action,
} from '../../src/engine/group';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface QueueItem {
  at: number;
  seq: number;
  run: () => void;
}

/** Binary min-heap on (at, seq) so that equal times run in scheduling order. */
class EventQueue {
  private heap: QueueItem[] = [];
  private seq = 0;
  push(at: number, run: () => void): void {
    const h = this.heap;
    h.push({ at, seq: this.seq++, run });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): QueueItem | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
  peekTime(): number | undefined {
    return this.heap[0]?.at;
  }
}

function less(a: QueueItem, b: QueueItem): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export interface SimNode {
  id: number;
  params: GroupParams;
  alive: boolean;
  state: GroupState | null;
  partition: number;
  /** Guards against stale timer events after a reschedule or restart. */
  timerGen: number;
  /** When this node last accepted an advertisement from a master (or started listening). */
  lastHeard: number;
  /** deferSteady: when the last steady advertisement not yet stepped arrived (-1: none). */
  heardAt: number;
  /** deferSteady: where the master's timers carried out but not stepped moved advertAt (-1: none). */
  advertAt: number;
}

export interface Violation {
  at: number;
  what: string;
}

export class Simulation {
  now = 0;
  readonly nodes: SimNode[];
  readonly violations: Violation[] = [];
  readonly transitions: { at: number; node: number; to: string; reason: string }[] = [];
  loss = 0;
  /** One-way delivery delay in ms. */
  delay = 0.3;
  /**
   * Timer wake-ups aim up to this many ms before the deadline (a batching scheduler, a clock
   * firing early): the engine must ignore what is not yet due, except a master's advertisement
   * within its slack.
   */
  earlyWake = 0;
  /** Periodic advertisements sent before their deadline (within the slack). */
  earlyAdverts = 0;
  /**
   * Steady advertisements (engine/group.ts, steadyAdvert) are not stepped when they arrive: the
   * node's next event steps the last of them at its arrival time first, as GroupRuntime does;
   * likewise a master's steady timers are carried out without a step, and the next event
   * applies the deadline they moved to (afterSteadyTimers).
   */
  deferSteady = false;
  /** Advertisements deferSteady did not step when they arrived. */
  deferred = 0;
  /** Also a master's steady timers (engine/group.ts, steadyTimer): carried out, not stepped. */
  deferredTimers = 0;
  private readonly q = new EventQueue();
  private readonly rand: () => number;

  constructor(
    readonly seed: number,
    params: GroupParams[],
  ) {
    this.rand = mulberry32(seed);
    this.nodes = params.map((p, i) => ({
      id: i,
      params: p,
      alive: false,
      state: null,
      partition: 0,
      timerGen: 0,
      lastHeard: 0,
      heardAt: -1,
      advertAt: -1,
    }));
  }

  random(): number {
    return this.rand();
  }

  start(id: number): void {
    const n = this.nodes[id];
    n.alive = true;
    n.state = initialState(n.params, this.now);
    n.lastHeard = this.now;
    n.heardAt = -1;
    n.advertAt = -1;
    this.apply(n, { type: 'start', linkUp: true, present: true });
  }

  kill(id: number): void {
    const n = this.nodes[id];
    n.alive = false;
    n.state = null;
    n.timerGen++;
  }

  /** Graceful stop, as with --shutdown: a master bows out. */
  stop(id: number): void {
    this.apply(this.nodes[id], { type: 'stop', bowOut: true });
    this.kill(id);
  }

  /**
   * ucarpctl restart: the node freezes (a master advertises once more), is gone for
   * `downMs` (the new image starting), then starts again carrying on in its state.
   */
  restartInPlace(id: number, downMs: number): void {
    const n = this.nodes[id];
    this.apply(n, { type: 'freeze' });
    const was = n.state?.state;
    this.kill(id);
    this.at(this.now + downMs, () => {
      n.alive = true;
      n.state = initialState(n.params, this.now);
      n.lastHeard = this.now;
      n.heardAt = -1;
      n.advertAt = -1;
      const resume = was === 'MASTER' || was === 'BACKUP' ? was : undefined;
      this.apply(n, { type: 'start', linkUp: true, present: true, resume });
    });
  }

  setPartition(id: number, partition: number): void {
    this.nodes[id].partition = partition;
  }

  masters(): number[] {
    return this.nodes.filter((n) => n.alive && n.state?.state === 'MASTER').map((n) => n.id);
  }

  at(t: number, run: () => void): void {
    this.q.push(t, run);
  }

  runUntil(t: number): void {
    for (;;) {
      const next = this.q.peekTime();
      if (next === undefined || next > t) break;
      const item = this.q.pop()!;
      this.now = item.at;
      item.run();
    }
    this.now = t;
  }

  private apply(n: SimNode, ev: Parameters<typeof step>[1]): void {
    if (!n.alive || !n.state) return;
    const steady = this.deferSteady ? steadyAdvert(n.state) : null;
    if (steady !== null && sameEvent(steady.event, ev)) {
      n.heardAt = this.now;
      n.lastHeard = this.now;
      this.deferred++;
      this.schedule(n, steadyDeadline(steady, this.now));
      return;
    }
    const timed = this.deferSteady && ev.type === 'timer' ? steadyTimer(n.state) : null;
    if (timed !== null) {
      const from = n.advertAt >= 0 ? n.advertAt : n.state.advertAt!;
      const next = steadyAdvertAt(timed, from, this.now);
      if (next !== null) {
        if (this.now < from) this.earlyAdverts++;
        n.advertAt = next;
        this.deferredTimers++;
        this.effect(n, n.state, timed.action);
        this.schedule(n, next);
        return;
      }
    }
    if (steady !== null && n.heardAt >= 0) {
      const r = step(n.state, steady.event, n.heardAt);
      if (r.actions.length > 0) this.violation(`node ${n.id}: a steady advertisement acted`);
      n.state = r.state;
    }
    n.heardAt = -1;
    if (n.advertAt >= 0) n.state = afterSteadyTimers(n.state, n.advertAt);
    n.advertAt = -1;
    const before = n.state;
    const r = step(n.state, ev, this.now);
    n.state = r.state;
    if ((ev.type === 'advert' || ev.type === 'vrrpAdvert') && r.state.lastAdvertAt === this.now)
      n.lastHeard = this.now;
    if (ev.type === 'timer' && before.state === 'MASTER' && before.advertAt !== null) {
      const periodic = r.actions.some((a) => a.type === 'send' || a.type === 'sendVrrp');
      const earliest = before.advertAt - advertSlackMs(before);
      if (periodic && this.now < earliest - 1e-6)
        this.violation(`node ${n.id} advertised ${before.advertAt - this.now} ms early`);
      if (periodic && this.now < before.advertAt) this.earlyAdverts++;
    }
    for (const a of r.actions) this.effect(n, before, a);
    this.schedule(n, n.state ? nextDeadline(n.state) : null);
  }

  private effect(n: SimNode, before: GroupState, a: Action): void {
    if (a.type === 'transition') {
      this.transitions.push({ at: this.now, node: n.id, to: a.to, reason: a.reason });
      if (a.reason === 'master-down') {
        // Safety: never before the dead time; liveness: never (much) after it.
        const md = masterDownMs(before);
        const since = this.now - Math.max(n.lastHeard, before.holdUntil - md);
        if (since < md - 1e-6) this.violation(`node ${n.id} took over early: ${since} ms < ${md} ms`);
        if (since > md + 1e-6) this.violation(`node ${n.id} took over late: ${since} ms > ${md} ms`);
      }
      if (a.to === 'BACKUP') n.lastHeard = this.now;
    } else if (a.type === 'send' || a.type === 'sendVrrp') {
      const src = n.params.srcip;
      const ev: Parameters<typeof step>[1] =
        a.type === 'send'
          ? { type: 'advert', src, advbase: a.advbase, advskew: a.advskew }
          : { type: 'vrrpAdvert', src, priority: a.priority, interval: a.interval };
      for (const peer of this.nodes) {
        if (peer === n || !peer.alive || peer.partition !== n.partition) continue;
        if (this.rand() < this.loss) continue;
        const peerRef = peer;
        this.q.push(this.now + this.delay, () => this.apply(peerRef, ev));
      }
    }
  }

  private schedule(n: SimNode, d: number | null): void {
    const gen = ++n.timerGen;
    if (d === null) return;
    let at = this.earlyWake > 0 ? d - this.earlyWake * this.rand() : d;
    if (at <= this.now) at = Math.max(d, this.now);
    this.q.push(at, () => {
      if (n.timerGen === gen) this.apply(n, { type: 'timer' });
    });
  }

  private violation(what: string): void {
    this.violations.push({ at: this.now, what });
  }
}

function sameEvent(a: Parameters<typeof step>[1], b: Parameters<typeof step>[1]): boolean {
  if (a.type === 'advert' && b.type === 'advert')
    return a.src === b.src && a.advbase === b.advbase && a.advskew === b.advskew;
  if (a.type === 'vrrpAdvert' && b.type === 'vrrpAdvert')
    return a.src === b.src && a.priority === b.priority && a.interval === b.interval;
  return false;
}
