// The send path of a MASTER host in-process (issue 11): N groups as masters (255 per interface)
// advertising through the interface hubs and the shared scheduler, with fake sockets and a fake
// clock. Prints ns and bytes allocated per advertisement. A bench, not a test:
//   node --expose-gc dist/bench/tx-path.js [groups] [seconds]
import { GroupRuntime, type GroupIo } from '../src/runtime/group-runtime';
import { Scheduler } from '../src/runtime/scheduler';
import { AfterBatch } from '../src/util/after-batch';
import { normalizeGroup } from '../src/config/normalize';
import { BenchClock, BenchSocket, benchHub, quiet } from './in-process';

const GROUPS = Number(process.argv[2] ?? 255);
const SECONDS = Number(process.argv[3] ?? 100);
const WARMUP_S = 20;
/** The clock's step: the event loop's wake-ups as the scheduler asks for them, 1 ms apart at most. */
const TICK_MS = 1;

/** Sends are told of their outcome at the end of the turn, as RawBatchSocket does. */
let pending: ((err: null) => void)[] = [];
let sent = 0;
class Sock extends BenchSocket {
  override queue(payload: Buffer, _dst: string, _src: string, done: (err: null) => void): void {
    if (payload.length !== 36) throw new Error('not an advertisement');
    sent++;
    pending.push(done);
  }
}
function endOfTurn(): void {
  const p = pending;
  pending = [];
  for (const done of p) done(null);
}

const VHIDS = 255;
const INTERFACES = Math.ceil(GROUPS / VHIDS);
const clock = new BenchClock();
const scheduler = new Scheduler(clock);
const batch = new AfterBatch((flush) => queueMicrotask(flush));
const groups: GroupRuntime[] = [];
for (let i = 0; i < INTERFACES; i++) {
  const sock = new Sock();
  const hub = benchHub(i, sock);
  for (let v = 1; v <= Math.min(VHIDS, GROUPS - i * VHIDS); v++) {
    const n = i * VHIDS + v;
    const cfg = normalizeGroup(
      `g${n}`,
      {
        vhid: v,
        interface: `eth${i}`,
        addresses: [`198.18.${n >> 8}.${n & 255}/15`],
        advskew: 0,
        manage_addresses: false,
      },
      { srcip: '198.18.255.1', password: 'pw' },
    );
    const io: GroupIo = {
      send: (payload, dst, src, done) => hub.send(payload, dst, src, done),
      garp: () => {},
      addAddress: async () => {},
      delAddress: async () => {},
    };
    const g = new GroupRuntime(cfg, { io, log: quiet, clock, afterBatch: batch, scheduler });
    hub.add(g);
    // Started over the first second, as a daemon's groups come up over its start-up.
    clock.advance(1000 / GROUPS);
    g.start(true);
    groups.push(g);
  }
}

function run(ms: number): void {
  for (let t = 0; t < ms; t += TICK_MS) {
    clock.advance(TICK_MS);
    endOfTurn();
  }
}

const gc = (globalThis as { gc?: () => void }).gc;
run(WARMUP_S * 1000);
for (const g of groups) if (g.state !== 'MASTER') throw new Error(`${g.config.name} is ${g.state}`);
gc?.();
let allocated = 0;
let last = process.memoryUsage().heapUsed;
const sent0 = sent;
const wake0 = scheduler.wakeups;
const t0 = process.hrtime.bigint();
for (let s = 0; s < SECONDS; s++) {
  run(1000);
  const h = process.memoryUsage().heapUsed;
  if (h >= last) allocated += h - last;
  else allocated += h; // a scavenge ran: count from zero (an upper bound of new-space garbage)
  last = h;
}
const ns = Number(process.hrtime.bigint() - t0);
const n = sent - sent0;
for (const g of groups) if (g.state !== 'MASTER') throw new Error(`${g.config.name} is ${g.state}`);
console.log('| groups | advertisements | wake-ups/s | ns/advertisement | bytes/advertisement (approx) |');
console.log('|---|---|---|---|---|');
console.log(
  `| ${GROUPS} | ${n} | ${((scheduler.wakeups - wake0) / SECONDS).toFixed(0)} | ${(ns / n).toFixed(0)} | ${(allocated / n).toFixed(0)} |`,
);
