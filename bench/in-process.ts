// What the in-process benches (rx-path.ts, tx-path.ts) fake: the clock, the sockets an
// interface hub opens, its link, and a logger that says nothing.
import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from '../src/runtime/clock';
import { InterfaceHub, type HubDeps, type HubSocket, type HubSocket6 } from '../src/runtime/interface-hub';
import type { LinkInfo } from '../src/net/rtnl';

export const quiet = { debug() {}, info() {}, warn() {}, error() {} } as never;

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

/** A raw socket that sends nothing; the benches deliver packets with emit('packet'). */
export class BenchSocket extends EventEmitter {
  join(): void {}
  leave(): void {}
  addLocalSource(): void {}
  removeLocalSource(): void {}
  queue(_payload: Buffer, _dst: string, _src: string, _done: (err: null) => void): void {}
  transmit(): void {}
  close(): void {}
}

/** A hub's sockets: `sock` for IPv4, a new silent one for IPv6, a GARP sender that sends nothing. */
function benchHubDeps(sock: BenchSocket): HubDeps {
  return {
    openSocket: () => sock as unknown as HubSocket,
    openSocket6: () => new BenchSocket() as unknown as HubSocket6,
    garpSender: () =>
      ({
        open: () => 0,
        queuedFrames: 0,
        queue() {},
        queueNeighbourAdverts() {},
        flush() {},
        close() {},
      }) as never,
  };
}

/** The hub of interface `eth<i>`, up and running, on `sock`. */
export function benchHub(i: number, sock: BenchSocket): InterfaceHub {
  const hub = new InterfaceHub(`eth${i}`, quiet, benchHubDeps(sock));
  const link: LinkInfo = { index: 3 + i, name: `eth${i}`, mac: Buffer.alloc(6, 1), up: true, running: true };
  hub.attach(link);
  return hub;
}
