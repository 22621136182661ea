// The receive path of a BACKUP host in-process (issue 11): N groups as backups (255 per
// interface), each fed its master's real encoded advertisements through the interface hub's
// packet handler, with fake sockets and a fake clock. Prints ns and bytes allocated per packet. A bench, not a test:
//   node --expose-gc dist/bench/rx-path.js [groups] [rounds]
import { GroupRuntime, type GroupIo } from '../src/runtime/group-runtime';
import { Scheduler } from '../src/runtime/scheduler';
import { AfterBatch } from '../src/util/after-batch';
import { normalizeGroup } from '../src/config/normalize';
import { BenchClock, BenchSocket, benchHub, quiet } from './in-process';
import { carpPayload, ipv4Packet } from '../test/helpers/packets';

const GROUPS = Number(process.argv[2] ?? 255);
const ROUNDS = Number(process.argv[3] ?? 400);
const WARMUP = 200;

const io: GroupIo = {
  send: (_p: Buffer, _d: string, _s: string, done: (err: Error | null) => void) => done(null),
  garp: () => {},
  addAddress: async () => {},
  delAddress: async () => {},
} as unknown as GroupIo;

/** One socket per interface: the hub of interface i listens on socks[i]. */
const socks: BenchSocket[] = [];
/** vhids 1..255 on each interface, as the scale benchmark lays out more than 255 groups. */
const VHIDS = 255;
const INTERFACES = Math.ceil(GROUPS / VHIDS);
const clock = new BenchClock();
function vip(n: number): string {
  return `198.18.${n >> 8}.${n & 255}/15`;
}
const scheduler = new Scheduler(clock);
const batch = new AfterBatch((flush) => queueMicrotask(flush));
const groups: GroupRuntime[] = [];
for (let i = 0; i < INTERFACES; i++) {
  const sock = new BenchSocket();
  socks.push(sock);
  const hub = benchHub(i, sock);
  for (let v = 1; v <= Math.min(VHIDS, GROUPS - i * VHIDS); v++) {
    const n = i * VHIDS + v;
    const cfg = normalizeGroup(
      `g${n}`,
      { vhid: v, interface: `eth${i}`, addresses: [vip(n)], advskew: 100, manage_addresses: false },
      { srcip: '198.18.255.2', password: 'pw' },
    );
    const g = new GroupRuntime(cfg, { io, log: quiet, clock, afterBatch: batch, scheduler });
    hub.add(g);
    g.start(true);
    groups.push(g);
  }
}

// Each master's advertisements with counters 1.., framed as the kernel hands them over.
// Interleaved across the interfaces, as a master's groups started together send them.
function packets(counter: bigint): { sock: BenchSocket; buf: Buffer }[] {
  const out: { sock: BenchSocket; buf: Buffer }[] = [];
  for (let v = 1; v <= VHIDS; v++)
    for (let i = 0; i < INTERFACES; i++) {
      const n = i * VHIDS + v;
      if (n > GROUPS) continue;
      const p = carpPayload({ vhid: v, password: 'pw', addresses: [vip(n).split('/')[0]], counter });
      out.push({ sock: socks[i], buf: ipv4Packet('198.18.255.1', '224.0.0.18', p) });
    }
  return out;
}
const sets = [packets(1n), packets(2n), packets(3n), packets(4n)];

// The masters' advertisements spread over each second, as they arrive from a real master.
const STEP = 1000 / GROUPS;
function round(r: number): void {
  const set = sets[r % sets.length];
  for (const p of set) {
    clock.advance(STEP);
    p.sock.emit('packet', p.buf);
  }
}

const gc = (globalThis as { gc?: () => void }).gc;
for (let r = 0; r < WARMUP; r++) round(r);
for (const g of groups) if (g.state !== 'BACKUP') throw new Error(`${g.config.name} is ${g.state}`);
gc?.();
const heap0 = process.memoryUsage().heapUsed;
let allocated = 0;
let last = heap0;
const t0 = process.hrtime.bigint();
for (let r = 0; r < ROUNDS; r++) {
  round(r);
  const h = process.memoryUsage().heapUsed;
  if (h >= last) allocated += h - last;
  else allocated += h; // a scavenge ran: count from zero (an upper bound of new-space garbage)
  last = h;
}
const ns = Number(process.hrtime.bigint() - t0);
const n = ROUNDS * GROUPS;
for (const g of groups) if (g.state !== 'BACKUP') throw new Error(`${g.config.name} is ${g.state}`);
console.log('| groups | packets | ns/packet | bytes/packet (approx) |');
console.log('|---|---|---|---|');
console.log(`| ${GROUPS} | ${n} | ${(ns / n).toFixed(0)} | ${(allocated / n).toFixed(0)} |`);
