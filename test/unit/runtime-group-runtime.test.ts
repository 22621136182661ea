// GroupRuntime with a fake clock and fake I/O: the driver's own rules (timers and the early
// wake, send failures fed back, link events, stop and bow-out, addresses), without sockets.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { GroupRuntime, groupParams, type GroupIo } from '../../src/runtime/group-runtime';
import { AfterBatch } from '../../src/util/after-batch';
import { normalizeGroup } from '../../src/config/normalize';
import type { GroupConfig } from '../../src/config/types';
import { CARP_HEADER_LEN, parseFraming } from '../../src/protocol/carp';
import { FakeClock } from '../helpers/fake-clock';
import { fakeLog } from '../helpers/fake-log';
import { carpPayload, ipv4Packet } from '../helpers/packets';
import { encodeVrrp, parseVrrpFraming, verifyVrrp } from '../../src/protocol/vrrp';
import { ipv4ToBytes } from '../../src/net/ipv4';
import { ipv6ToBytes, sourceOf } from '../../src/net/ipv6';

const PASSWORD = 'secret';

function config(patch: Record<string, unknown> = {}): GroupConfig {
  return normalizeGroup(
    'web',
    { vhid: 10, interface: 'eth0', addresses: ['192.0.2.100/24'], ...patch },
    { srcip: '192.0.2.1', password: PASSWORD },
  );
}

interface Sent {
  at: number;
  advbase: number;
  advskew: number;
  dst: string;
  src: string;
}

class FakeIo implements GroupIo {
  sent: Sent[] = [];
  garps: { at: number; addresses: string[] }[] = [];
  addresses: string[] = [];
  ops: string[] = [];
  failSends = false;
  /**
   * Like the interface hub: outcomes held until the end of the batch (flushBatch), those to
   * `refuse` failing then.
   */
  batched = false;
  refuse = new Set<string>();
  private held: (() => void)[] = [];
  constructor(private readonly clock: FakeClock) {}
  send(payload: Buffer, dst: string, src: string, done: (err: Error | null) => void): void {
    if (this.failSends) throw new Error('No such device');
    assert.equal(payload.length, CARP_HEADER_LEN);
    this.sent.push({ at: this.clock.now(), advbase: payload[5], advskew: payload[2], dst, src });
    const err = this.refuse.has(dst)
      ? new Error(`send on eth0: 192.0.2.1 -> ${dst}: Operation not permitted`)
      : null;
    if (this.batched) this.held.push(() => done(err));
    else done(err);
  }
  flushBatch(): void {
    const held = this.held;
    this.held = [];
    for (const f of held) f();
  }
  garp(addresses: string[]): void {
    this.garps.push({ at: this.clock.now(), addresses });
  }
  async addAddress(ifname: string, address: string, prefixlen: number): Promise<void> {
    this.ops.push(`add ${ifname} ${address}/${prefixlen}`);
    this.addresses.push(address);
  }
  async delAddress(ifname: string, address: string, prefixlen: number): Promise<void> {
    this.ops.push(`del ${ifname} ${address}/${prefixlen}`);
    this.addresses = this.addresses.filter((a) => a !== address);
  }
}

function setup(patch: Record<string, unknown> = {}) {
  const clock = new FakeClock();
  const io = new FakeIo(clock);
  const logs = fakeLog();
  const batch = new AfterBatch((flush) => queueMicrotask(flush));
  const g = new GroupRuntime(config(patch), { io, log: logs.log, clock, afterBatch: batch });
  return { clock, io, logs, g };
}

/** Delivers an advertisement from `src` as the interface hub would. */
function advert(g: GroupRuntime, src: string, advbase: number, advskew: number, password = PASSWORD): void {
  const pkt = ipv4Packet(
    src,
    '224.0.0.18',
    carpPayload({ vhid: 10, password, addresses: ['192.0.2.100'], advbase, advskew }),
  );
  const f = parseFraming(pkt);
  assert.ok(f.ok);
  g.onPacket(pkt, f.framing);
}

const flush = () => new Promise<void>((r) => setImmediate(r));

describe('GroupRuntime', () => {
  it('logs a failed announcement as what it is: gratuitous ARP, or neighbour advertisements for IPv6', () => {
    const families = [
      { address: '192.0.2.100/24', srcip: '192.0.2.1', what: 'gratuitous ARP' },
      { address: '2001:db8::100/64', srcip: '2001:db8::1', what: 'neighbour advertisement' },
    ];
    for (const { address, srcip, what } of families) {
      const clock = new FakeClock();
      const io = new FakeIo(clock);
      (io as GroupIo).garp = (_addresses, _src, done) => done(new Error('Network is down'));
      const logs = fakeLog();
      const cfg = normalizeGroup(
        'web',
        { vhid: 10, interface: 'eth0', addresses: [address] },
        { srcip, password: PASSWORD },
      );
      const batch = new AfterBatch((flush) => queueMicrotask(flush));
      const g = new GroupRuntime(cfg, { io, log: logs.log, clock, afterBatch: batch });
      g.start(true);
      clock.advanceTo(clock.now() + 3000);
      assert.equal(g.state, 'MASTER');
      assert.deepEqual(logs.at('error'), [`${what} failed: Network is down`]);
    }
  });

  /** A backup that hears `heard` (counters, a second apart), then takes over: what it sends. */
  function takeOverAfterCounters(heard: bigint[]) {
    const { clock, io, g } = setup();
    const counters: bigint[] = [];
    const send = io.send.bind(io);
    io.send = (payload, dst, src, done) => {
      counters.push(payload.readBigUInt64BE(8));
      send(payload, dst, src, done);
    };
    g.start(true);
    for (const counter of heard) {
      clock.advanceTo(clock.now() + 1000);
      const pkt = ipv4Packet(
        '192.0.2.9',
        '224.0.0.18',
        carpPayload({ vhid: 10, password: PASSWORD, addresses: ['192.0.2.100'], counter }),
      );
      const f = parseFraming(pkt);
      assert.ok(f.ok);
      g.onPacket(pkt, f.framing);
    }
    assert.equal(g.state, 'BACKUP');
    clock.advanceTo(clock.now() + 5000);
    assert.equal(g.state, 'MASTER');
    return { g, counters };
  }

  it('without replay protection, a new master carries on from the last counter it heard', () => {
    // The last one's halves both have their top bit set (kept as signed 32-bit integers).
    const { g, counters } = takeOverAfterCounters([41n, 0xfedcba98_f6543210n]);
    assert.equal(counters[0], 0xfedcba98_f6543211n);
    const last = counters[counters.length - 1];
    assert.equal(g.freeze().counter, last + 1n, 'the advertisement at freeze is the next one');
  });

  it('counts on from a heard counter modulo 2^64, carrying from the low half into the high one', () => {
    for (const [heard, next] of [
      [0x00000007_ffffffffn, 0x00000008_00000000n],
      [0x7fffffff_ffffffffn, 0x80000000_00000000n],
      [0xffffffff_ffffffffn, 0n],
      [0xffffffff_7fffffffn, 0xffffffff_80000000n],
    ]) {
      const { counters } = takeOverAfterCounters([heard]);
      assert.deepEqual(counters.slice(0, 3), [
        next,
        (next + 1n) & 0xffffffff_ffffffffn,
        (next + 2n) & 0xffffffff_ffffffffn,
      ]);
    }
  });

  it('starts as BACKUP, wakes early for the dead time, and takes over exactly at it', async () => {
    const { clock, io, g } = setup();
    const t0 = clock.now();
    g.start(true);
    assert.equal(g.state, 'BACKUP');
    // A 3 s wait aims 7 ms early (epoll slack); the remainder is a short re-arm.
    assert.deepEqual(clock.armed(), [{ at: t0 + 2993, ms: 2993 }]);
    clock.advanceTo(t0 + 2993);
    assert.equal(g.state, 'BACKUP');
    assert.deepEqual(clock.armed(), [{ at: t0 + 3000, ms: 7 }]);
    clock.advanceTo(t0 + 3000);
    assert.equal(g.state, 'MASTER');
    assert.deepEqual(io.sent, [
      { at: t0 + 3000, advbase: 1, advskew: 0, dst: '224.0.0.18', src: '192.0.2.1' },
    ]);
    assert.deepEqual(io.garps, [{ at: t0 + 3000, addresses: ['192.0.2.100'] }]);
    await flush();
    // Entering BACKUP at start clears what a crashed run may have left; MASTER adds it.
    assert.deepEqual(io.ops, ['del eth0 192.0.2.100/24', 'add eth0 192.0.2.100/24']);
  });

  it('a takeover asks for its addresses within the timer that decides it, after its advertisement', async () => {
    const { clock, io, g } = setup();
    const t0 = clock.now();
    g.start(true);
    await flush();
    const add = io.addAddress.bind(io);
    let advertsBeforeAdd = -1;
    io.addAddress = (ifname, address, prefixlen) => {
      advertsBeforeAdd = io.sent.length;
      return add(ifname, address, prefixlen);
    };
    clock.advanceTo(t0 + 3000);
    // Nothing awaited: in a mass takeover the timer run serves thousands of groups, and the
    // request must join the netlink datagram being filled, not wait for the run to end.
    assert.equal(g.state, 'MASTER');
    assert.deepEqual(io.ops, ['del eth0 192.0.2.100/24', 'add eth0 192.0.2.100/24']);
    assert.equal(advertsBeforeAdd, 1, 'the advertisement goes first');
  });

  it("steps a run of its master's steady advertisements once, at the last one's time, before the next event", () => {
    const { clock, g } = setup({ advskew: 100 });
    const t0 = clock.now();
    g.start(true);
    const engineState = () => (g as unknown as { s: object }).s;
    clock.advanceTo(t0 + 500);
    advert(g, '192.0.2.2', 1, 0);
    const followed = engineState();
    for (let k = 1; k <= 5; k++) {
      clock.advanceTo(t0 + 500 + k * 1000);
      advert(g, '192.0.2.2', 1, 0);
    }
    assert.equal(engineState(), followed, 'steady advertisements were not stepped one by one');
    const last = t0 + 5500;
    // An event in between steps the deferred one first, at its own time: the demotion's new
    // dead time counts from the last advertisement, not from now.
    clock.advanceTo(last + 700);
    g.setHealth({ trackFault: false, syncFault: false, demotion: 20, failed: [] });
    assert.notEqual(engineState(), followed);
    assert.equal((engineState() as { lastAdvertAt: number }).lastAdvertAt, last);
    const demoted = 3000 + (120 * 1000) / 256;
    clock.advanceTo(last + demoted - 0.5);
    assert.equal(g.state, 'BACKUP');
    // The scheduler's re-arm is a whole number of ms: within 1 ms of the deadline.
    clock.advanceTo(last + demoted + 1);
    assert.equal(g.state, 'MASTER');
  });

  it("carries out a master's steady advertisements without stepping them; the next event starts from the deadline they moved", () => {
    const { clock, io, g } = setup({ advskew: 0 });
    const t0 = clock.now();
    g.start(true);
    // Master after the dead time, and past the takeover's delayed gratuitous ARP.
    clock.advanceTo(t0 + 8000);
    assert.equal(g.state, 'MASTER');
    const engineState = () => (g as unknown as { s: { advertAt: number } }).s;
    const before = engineState();
    const n = io.sent.length;
    clock.advanceTo(t0 + 13_000);
    assert.equal(engineState(), before, 'steady timers were not stepped');
    const times = io.sent.slice(n).map((x) => x.at);
    assert.equal(times.length, 5);
    // Each a whole interval after the one before (the scheduler's wake-up is within 1 ms).
    for (let i = 1; i < times.length; i++)
      assert.ok(Math.abs(times[i] - times[i - 1] - 1000) <= 1, `${times}`);
    assert.deepEqual(
      io.sent.slice(n).map((x) => [x.advbase, x.advskew]),
      times.map(() => [1, 0]),
    );
    // A worse master: a gratuitous ARP now and one with the second advertisement after it. The
    // step starts from the deadline the steady timers moved, not from the state's old one.
    const last = times[times.length - 1];
    const garps = io.garps.length;
    clock.advanceTo(last + 400);
    advert(g, '192.0.2.9', 1, 100);
    assert.equal(io.garps.length, garps + 1);
    assert.ok(Math.abs(engineState().advertAt - (last + 1000)) <= 1, `${engineState().advertAt} vs ${last}`);
    assert.equal(io.sent.length, n + 5, 'nothing sent at once');
    clock.advanceTo(last + 2500);
    const after = io.sent.slice(n + 5).map((x) => x.at - last);
    assert.equal(after.length, 2);
    assert.ok(Math.abs(after[0] - 1000) <= 1 && Math.abs(after[1] - 2000) <= 1, `${after}`);
    assert.equal(io.garps.length, garps + 2, 'the delayed one went with the second advertisement');
  });

  it('takes over exactly its dead time after the last of a run of steady advertisements', () => {
    const { clock, g } = setup({ advskew: 100 });
    const t0 = clock.now();
    g.start(true);
    const dead = 3000 + (100 * 1000) / 256;
    for (let k = 0; k < 4; k++) {
      clock.advanceTo(t0 + 300 + k * 1000);
      advert(g, '192.0.2.2', 1, 0);
    }
    // A new timing from the same master is not steady: stepped at once, and the next ones are
    // steady again with it.
    clock.advanceTo(t0 + 4300);
    advert(g, '192.0.2.2', 1, 50);
    clock.advanceTo(t0 + 5300);
    advert(g, '192.0.2.2', 1, 50);
    clock.advanceTo(t0 + 5300 + dead - 0.5);
    assert.equal(g.state, 'BACKUP');
    clock.advanceTo(t0 + 5300 + dead + 1);
    assert.equal(g.state, 'MASTER');
  });

  it('VRRP: checksums each advertisement with the source it has, learnt or not', () => {
    const clock = new FakeClock();
    const sent: Buffer[] = [];
    const io = {
      send: (payload: Buffer, _dst: string, _src: string, done: (err: Error | null) => void) => {
        sent.push(Buffer.from(payload));
        done(null);
      },
      garp: () => {},
      addAddress: async () => {},
      delAddress: async () => {},
    } as unknown as GroupIo;
    const cfg = normalizeGroup(
      'web',
      { vhid: 10, interface: 'eth0', addresses: ['192.0.2.100/24'], protocol: 'vrrp3', priority: 255 },
      { srcip: '', password: PASSWORD },
    );
    const g = new GroupRuntime(cfg, {
      io,
      log: fakeLog().log,
      clock,
      afterBatch: new AfterBatch((f) => queueMicrotask(f)),
    });
    g.start(true);
    assert.equal(g.state, 'MASTER', 'the address owner is master at once');
    const group = ipv4ToBytes('224.0.0.18');
    assert.ok(verifyVrrp(sent[0], 0, Buffer.alloc(4), group).ok, 'no source yet: zeros');
    g.setSource('192.0.2.7');
    clock.advanceTo(clock.now() + 1000);
    const last = sent[sent.length - 1];
    assert.ok(verifyVrrp(last, 0, ipv4ToBytes('192.0.2.7'), group).ok);
    assert.ok(!verifyVrrp(last, 0, Buffer.alloc(4), group).ok);
    // Every one of a run, each encoded into the buffer the one before was (its checksum there).
    const from = sent.length;
    clock.advanceTo(clock.now() + 5000);
    assert.equal(sent.length - from, 5);
    for (const adv of sent.slice(from)) assert.ok(verifyVrrp(adv, 0, ipv4ToBytes('192.0.2.7'), group).ok);
  });

  it("VRRP: a backup checks each advertisement's checksum against its own IP source and destination, both families", () => {
    for (const family of [4, 6] as const) {
      const clock = new FakeClock();
      const io = { send: () => {}, garp: () => {}, addAddress: async () => {}, delAddress: async () => {} };
      const [vip, src, other, group] =
        family === 4
          ? ['192.0.2.100/24', '192.0.2.9', '192.0.2.8', '224.0.0.18']
          : ['2001:db8::100/64', 'fe80::9', 'fe80::8', 'ff02::12'];
      const cfg = normalizeGroup(
        'web',
        { vhid: 10, interface: 'eth0', addresses: [vip], protocol: 'vrrp3', priority: 100 },
        { srcip: family === 4 ? '192.0.2.1' : 'fe80::1', password: PASSWORD },
      );
      const g = new GroupRuntime(cfg, {
        io: io as unknown as GroupIo,
        log: fakeLog().log,
        clock,
        afterBatch: new AfterBatch((f) => queueMicrotask(f)),
      });
      g.start(true);
      const bytes = family === 4 ? ipv4ToBytes : ipv6ToBytes;
      const vrrp = bytes(vip.split('/')[0]);
      // Checksummed from `from`, delivered as coming from `as` (the pseudo-header's source).
      const deliver = (from: string, as: string) => {
        const msg = encodeVrrp(
          { vrid: 10, priority: 200, interval: 100, addresses: [vrrp] },
          bytes(from),
          bytes(group),
        );
        if (family === 6) {
          g.onPacket(msg, { offset: 0, src: sourceOf(as), dst: sourceOf(group), vhid: 10, version: 3 });
          return;
        }
        const pkt = ipv4Packet(as, group, msg);
        const f = parseVrrpFraming(pkt);
        assert.ok(f.ok);
        g.onPacket(pkt, f.framing);
      };
      for (let k = 0; k < 5; k++) {
        clock.advanceTo(clock.now() + 1000);
        deliver(src, src);
      }
      assert.equal(g.state, 'BACKUP', `IPv${family}: followed`);
      assert.equal(g.status().stats.received, 5);
      deliver(src, other);
      assert.equal(g.status().stats.rejects.checksum, 1, `IPv${family}: another source fails the checksum`);
      // Only rejected ones from now on: the dead time after the last good one, it takes over.
      clock.advanceTo(clock.now() + 900);
      deliver(src, other);
      clock.advanceTo(clock.now() + 3000);
      assert.equal(g.state, 'MASTER', `IPv${family}`);
    }
  });

  it('as MASTER advertises every advbase second on drift-free deadlines, without early wakes', () => {
    const { clock, io, g } = setup({ advskew: 128 });
    const t0 = clock.now();
    g.start(true);
    clock.advanceTo(t0 + 10_000);
    const gaps = io.sent.slice(1).map((s, i) => s.at - io.sent[i].at);
    assert.ok(gaps.length >= 4);
    for (const gap of gaps) assert.equal(gap, 1500);
    assert.ok(clock.armed().every((t) => t.ms >= 1500 - 1));
  });

  it('groups on one clock share one timer: masters due within the slack advertise in one wake-up', () => {
    const clock = new FakeClock();
    const batch = new AfterBatch((flush) => queueMicrotask(flush));
    const make = (vhid: number, address: string) => {
      const io = new FakeIo(clock);
      const cfg = config({ vhid, addresses: [address] });
      return { io, g: new GroupRuntime(cfg, { io, log: fakeLog().log, clock, afterBatch: batch }) };
    };
    const a = make(10, '192.0.2.100/24');
    const b = make(11, '192.0.2.101/24');
    const t0 = clock.now();
    a.g.start(true);
    clock.advance(3);
    b.g.start(true);
    clock.advanceTo(t0 + 3003);
    assert.equal(a.g.state, 'MASTER');
    assert.equal(b.g.state, 'MASTER');
    // Backups' deadlines were exact (3000 and 3003); from then on b's advertisement, due 3 ms
    // after a's, rides on a's wake-up.
    assert.deepEqual(
      a.io.sent.map((x) => x.at - t0),
      [3000],
    );
    assert.deepEqual(
      b.io.sent.map((x) => x.at - t0),
      [3003],
    );
    assert.equal(clock.armed().length, 1, 'one timer for both groups');
    clock.advanceTo(t0 + 6010);
    assert.deepEqual(
      a.io.sent.map((x) => x.at - t0),
      [3000, 4000, 5000, 6000],
    );
    assert.deepEqual(
      b.io.sent.map((x) => x.at - t0),
      [3003, 4000, 5000, 6000],
    );
  });

  it('a better master makes a MASTER step down; a worse one is answered by a gratuitous ARP', async () => {
    const { clock, io, g, logs } = setup();
    g.start(true);
    clock.advance(3000);
    assert.equal(g.state, 'MASTER');
    advert(g, '192.0.2.9', 1, 100);
    assert.equal(g.state, 'MASTER');
    assert.equal(io.garps.length, 2);
    advert(g, '192.0.2.9', 0, 10);
    assert.equal(g.state, 'BACKUP');
    await flush();
    assert.deepEqual(io.addresses, []);
    assert.deepEqual(logs.at('warn'), [
      'Switching to state: MASTER (master-down)',
      'Switching to state: BACKUP (better-master)',
    ]);
    assert.equal(g.status().master?.address, '192.0.2.9');
  });

  it('three failed sends advertise advskew 240; three good ones clear it (through dispatch)', () => {
    const { clock, io, g, logs } = setup({ advskew: 5 });
    const start = clock.now();
    g.start(true);
    clock.advanceTo(start + 3100);
    assert.equal(g.state, 'MASTER');
    io.failSends = true;
    clock.advanceTo(start + 6160);
    assert.equal(g.status().advskew, 240);
    assert.equal(g.status().stats.sendErrors, 3);
    io.failSends = false;
    const t0 = start;
    clock.advanceTo(t0 + 8100);
    assert.equal(io.sent.at(-1)?.advskew, 240);
    clock.advanceTo(t0 + 12_000);
    assert.equal(g.status().advskew, 5);
    // Send failures are logged once per period, with the count of those held back.
    assert.equal(logs.at('warn').filter((l) => l.startsWith('sending advertisement')).length, 1);
  });

  it('batched sends: failures reach the group when the batch is flushed, per destination', () => {
    const { clock, io, g, logs } = setup({ advskew: 5, peers: ['192.0.2.2', '192.0.2.3'] });
    const start = clock.now();
    g.start(true);
    clock.advanceTo(start + 3100);
    assert.equal(g.state, 'MASTER');
    io.batched = true;
    io.flushBatch();
    // One peer refuses: each advertisement still left once, so the group counts it as sent.
    io.refuse.add('192.0.2.3');
    const sentBefore = g.status().stats.sent;
    clock.advanceTo(start + 4200);
    assert.equal(g.status().stats.sendErrors, 0, 'nothing known before the flush');
    io.flushBatch();
    assert.equal(g.status().stats.sendErrors, 1);
    assert.equal(g.status().stats.sent, sentBefore + 1);
    assert.match(
      logs.at('warn')[0],
      /^sending advertisement to 192\.0\.2\.3 failed: .*Operation not permitted$/,
    );
    // Both refuse, three times: the engine hears each failure at its flush and demotes.
    io.refuse.add('192.0.2.2');
    for (const t of [5300, 6400, 7500]) {
      assert.equal(g.status().advskew, 5);
      clock.advanceTo(start + t);
      io.flushBatch();
    }
    assert.equal(g.status().advskew, 240);
    assert.equal(g.status().stats.sendErrors, 7);
  });

  it('carrier loss takes a MASTER to FAULT and releases its address; carrier back re-arms', async () => {
    const { clock, io, g } = setup();
    g.start(true);
    clock.advance(3000);
    await flush();
    assert.deepEqual(io.addresses, ['192.0.2.100']);
    g.onLink(false);
    assert.equal(g.state, 'FAULT');
    assert.deepEqual(clock.armed(), []);
    await flush();
    assert.deepEqual(io.addresses, []);
    const back = clock.now();
    g.onLink(true);
    clock.advanceTo(back + 3000);
    assert.equal(g.state, 'MASTER');
  });

  it('ignoreifstate keeps a MASTER through carrier loss', () => {
    const { clock, g } = setup({ ignoreifstate: true });
    g.start(true);
    clock.advance(3000);
    g.onLink(false);
    assert.equal(g.state, 'MASTER');
  });

  it('stop as MASTER bows out (255/255), releases addresses and arms nothing', async () => {
    const { clock, io, g } = setup();
    g.start(true);
    clock.advance(3000);
    await flush();
    await g.stop({ bowOut: true, downscript: true, releaseAddresses: true });
    assert.deepEqual(
      io.sent.map((s) => [s.advbase, s.advskew]),
      [
        [1, 0],
        [255, 255],
      ],
    );
    assert.deepEqual(io.addresses, []);
    assert.deepEqual(clock.armed(), []);
    clock.advance(10_000);
    assert.equal(io.sent.length, 2);
  });

  it('stop without release (process dying) keeps the address and sends no bow-out', async () => {
    const { clock, io, g } = setup();
    g.start(true);
    clock.advance(3000);
    await flush();
    await g.stop({ bowOut: false, downscript: false, releaseAddresses: false });
    assert.equal(io.sent.length, 1);
    assert.deepEqual(io.addresses, ['192.0.2.100']);
  });

  it('rejects a wrong password by reason, logs it once per period, and does not change state', () => {
    const { clock, g, logs } = setup();
    g.start(true);
    for (let i = 0; i < 5; i++) advert(g, '192.0.2.9', 0, 0, 'other');
    assert.equal(g.state, 'BACKUP');
    assert.equal(g.status().stats.rejects.digest, 5);
    assert.equal(logs.at('warn').length, 1);
    clock.advance(10_000);
    advert(g, '192.0.2.9', 0, 0, 'other');
    const rejects = logs.at('warn').filter((l) => l.startsWith('rejected'));
    assert.equal(rejects.length, 2);
    assert.match(rejects[1], /\(4 more since last report\)$/);
  });

  it('an in-place update retimes a MASTER without a transition', () => {
    const { clock, io, g } = setup();
    g.start(true);
    clock.advance(3000);
    g.update(config({ advbase: 2 }));
    clock.advance(4100);
    assert.equal(g.state, 'MASTER');
    assert.equal(g.status().stats.transitions, 2);
    assert.deepEqual(
      io.sent.slice(1).map((s) => s.advbase),
      [2, 2],
    );
  });

  it('step-down (SIGUSR2) hands over with a bow-out and overrides are cleared through dispatch', () => {
    const { clock, io, g } = setup({ preempt: true });
    g.start(true);
    clock.advance(3000);
    g.stepDown();
    assert.equal(g.state, 'BACKUP');
    assert.deepEqual(io.sent.at(-1), {
      at: clock.now(),
      advbase: 255,
      advskew: 255,
      dst: '224.0.0.18',
      src: '192.0.2.1',
    });
    g.setOverride('promote');
    assert.equal(g.status().override, 'promote');
    g.setOverride('none');
    g.setOverride('none');
    assert.equal(g.status().override, 'none');
  });
});

describe('GroupRuntime across ucarpctl restart', () => {
  it('freeze: one more advertisement, no bow-out, the address and no script touched; the counter goes over', async () => {
    const { clock, io, g } = setup();
    g.start(true);
    clock.advance(3000);
    await flush();
    const opsBefore = io.ops.length;
    const f = g.freeze();
    assert.equal(f.state, 'MASTER');
    assert.deepEqual(
      io.sent.map((s) => [s.advbase, s.advskew]),
      [
        [1, 0],
        [1, 0],
      ],
    );
    assert.deepEqual(clock.armed(), []);
    await flush();
    assert.equal(io.ops.length, opsBefore);
    assert.deepEqual(io.addresses, ['192.0.2.100']);

    // The next image: resumes as MASTER with that counter, advertising at once.
    const next = setup();
    next.g.start(true, true, { state: 'MASTER', counter: f.counter });
    assert.equal(next.g.state, 'MASTER');
    assert.equal(next.io.sent.length, 1);
    assert.equal(next.io.sent[0].at, next.clock.now(), 'at once');
    assert.equal(next.g.freeze().counter, f.counter + 2n, 'one advertisement at resume, one at freeze');
    await flush();
    // The address is added again (idempotent in the kernel) so that this image records it.
    assert.deepEqual(next.io.ops, ['add eth0 192.0.2.100/24']);
  });
});

// Replay protection (docs/protocol.md §20) between real runtimes: every packet a node sends is
// captured and delivered to the others 1 ms later; an attacker replays captured packets.
describe('GroupRuntime with replay_protection', () => {
  /** 2026-09-21 in ms: the wall clock at fake time 0. */
  const WALL0 = 1_790_000_000_000;

  interface Peer {
    g: GroupRuntime;
    src: string;
    alive: boolean;
  }

  class Segment {
    readonly clock = new FakeClock();
    readonly peers: Peer[] = [];
    /** Every IPv4 packet sent, as on the wire. */
    readonly capture: { from: string; pkt: Buffer }[] = [];

    /** A node with its own srcip and a wall clock `skewMs` off the others. */
    add(
      src: string,
      patch: Record<string, unknown>,
      skewMs = 0,
      resume?: Parameters<GroupRuntime['start']>[2],
    ): Peer {
      const cfg = normalizeGroup(
        'web',
        { vhid: 10, interface: 'eth0', addresses: ['192.0.2.100/24'], ...patch },
        { srcip: src, password: PASSWORD },
      );
      const peer = { src, alive: true } as Peer;
      const io: GroupIo = {
        send: (payload, dst, from, done) => {
          if (peer.alive) {
            const pkt = ipv4Packet(from, dst, Buffer.from(payload));
            this.capture.push({ from, pkt });
            this.deliver(pkt, peer);
          }
          done(null);
        },
        garp: () => undefined,
        addAddress: async () => undefined,
        delAddress: async () => undefined,
      };
      const wallClock = () => BigInt(Math.round((WALL0 + this.clock.now() + skewMs) * 1000));
      peer.g = new GroupRuntime(cfg, { io, log: fakeLog().log, clock: this.clock, wallClock });
      this.peers.push(peer);
      peer.g.start(true, true, resume);
      return peer;
    }

    /** To every live node but `except`, 1 ms later. */
    deliver(pkt: Buffer, except?: Peer): void {
      const f = parseFraming(pkt);
      assert.ok(f.ok);
      for (const p of this.peers)
        if (p !== except) this.clock.setTimer(() => p.alive && p.g.onPacket(pkt, f.framing), 1);
    }

    /** SIGKILL: no bow-out, no more packets either way. */
    kill(p: Peer): void {
      p.alive = false;
      void p.g.stop({ bowOut: false, downscript: false, releaseAddresses: false });
    }

    /** A third host replays `packets` in a loop, one every `everyMs`, from `from` to `until`. */
    replay(packets: Buffer[], from: number, until: number, everyMs = 1000): void {
      let i = 0;
      for (let t = from; t < until; t += everyMs) {
        const pkt = packets[i++ % packets.length];
        this.clock.setTimer(() => this.deliver(pkt), t - this.clock.now());
      }
    }

    /** Steps time to `to` in 1 ms ticks, calling `watch` after each. */
    runUntil(to: number, watch: (t: number) => void = () => undefined): void {
      while (this.clock.now() < to) {
        this.clock.advance(1);
        watch(this.clock.now());
      }
    }
  }

  /**
   * A (advskew 0) started 100 ms before B (advskew 20), both with replay_protection `on`, run
   * until `settleMs`: A is master and B backup.
   */
  function settledPair(aSrc: string, bSrc: string, on: boolean, settleMs: number, aPatch = {}) {
    const net = new Segment();
    const a = net.add(aSrc, { replay_protection: on, ...aPatch });
    net.clock.advance(100);
    const b = net.add(bSrc, { replay_protection: on, advskew: 20 });
    net.runUntil(settleMs);
    assert.equal(a.g.state, 'MASTER');
    assert.equal(b.g.state, 'BACKUP');
    return { net, a, b };
  }

  /** With src changed, the IPv4 header checksum recomputed: the CARP bytes stay as captured. */
  function spoof(pkt: Buffer, src: string): Buffer {
    const f = parseFraming(pkt);
    assert.ok(f.ok);
    return ipv4Packet(src, '224.0.0.18', pkt.subarray(f.framing.offset));
  }

  it('ucarpctl restart carries the window over: a new image whose wall clock went back is not a replay', () => {
    const net = new Segment();
    const a = net.add('192.0.2.1', { replay_protection: true });
    const b = net.add('192.0.2.2', { replay_protection: true, advskew: 20 });
    net.runUntil(5000);
    assert.equal(a.g.state, 'MASTER');
    assert.equal(b.g.state, 'BACKUP');
    const transitions = b.g.status().stats.transitions;
    const handed = a.g.freeze();
    a.alive = false;
    // The new image starts 300 ms later, its wall clock stepped back a minute meanwhile.
    net.runUntil(5300);
    assert.equal(handed.state, 'MASTER');
    const a2 = net.add('192.0.2.1', { replay_protection: true }, -60_000, {
      state: 'MASTER',
      counter: handed.counter,
    });
    net.runUntil(15_000);
    assert.equal(a2.g.state, 'MASTER');
    assert.equal(b.g.state, 'BACKUP');
    assert.equal(b.g.status().stats.rejects.replay, 0);
    assert.equal(b.g.status().stats.transitions, transitions);
  });

  for (const on of [true, false]) {
    it(`a dead master's advertisements replayed: ${on ? 'the backup takes over at its dead time' : 'without the option they hold the backup back'}`, () => {
      const { net, a, b } = settledPair('192.0.2.1', '192.0.2.2', on, 8000);
      const captured = net.capture.filter((c) => c.from === a.src).map((c) => c.pkt);
      const lastHeard = 8000 + 1;
      net.clock.advance(10);
      net.kill(a);
      net.replay(captured, 8500, 30_000);
      let tookOver: number | null = null;
      net.runUntil(30_000, (t) => {
        if (tookOver === null && b.g.state === 'MASTER') tookOver = t;
      });
      if (on) {
        // Dead time 3078.125 ms after the last real advertisement, seen at the next 1 ms tick.
        assert.equal(tookOver, Math.ceil(lastHeard + 3000 + (20 * 1000) / 256), 'at its dead time');
        assert.ok(b.g.status().stats.rejects.replay >= 20, JSON.stringify(b.g.status().stats.rejects));
      } else {
        assert.equal(tookOver, null, 'a replayed advertisement counts as the master being alive');
        assert.equal(b.g.status().stats.rejects.replay, 0);
      }
    });

    it(`a live master hearing its own advertisement from a lower source ${on ? 'stays master' : 'steps down'}`, () => {
      const { net, a, b } = settledPair('192.0.2.5', '192.0.2.9', on, 5000);
      const own = net.capture.filter((c) => c.from === a.src).map((c) => spoof(c.pkt, '192.0.2.2'));
      net.replay(own, 5500, 20_000);
      let masterless = 0;
      net.runUntil(20_000, () => {
        if (a.g.state !== 'MASTER' && b.g.state !== 'MASTER') masterless++;
      });
      if (on) {
        assert.equal(masterless, 0);
        assert.equal(a.g.status().stats.transitions, 2, 'BACKUP at start, then MASTER once');
        assert.ok(a.g.status().stats.rejects.replay >= 14);
        assert.ok(b.g.status().stats.rejects.replay >= 14);
      } else {
        assert.ok(masterless > 10_000, `no master for ${masterless} ms`);
      }
    });
  }

  it('a restarted backup whose clock is ahead by more than its dead time refuses the master, then yields within an interval', () => {
    const pair = settledPair('192.0.2.1', '192.0.2.2', true, 5000);
    const { net, a } = pair;
    let b = pair.b;
    net.kill(b);
    // B is back 10 s ahead: A's counters stay below B's start for 10 s.
    b = net.add('192.0.2.2', { replay_protection: true, advskew: 20 }, 10_000);
    const restarted = net.clock.now();
    const states: string[] = [];
    const at: number[] = [];
    net.runUntil(restarted + 15_000, (t) => {
      if (states.at(-1) !== b.g.state) {
        states.push(b.g.state);
        at.push(t);
      }
    });
    assert.deepEqual(states, ['BACKUP', 'MASTER', 'BACKUP'], 'one dual-master episode');
    // B takes over at its dead time, and yields at A's next advertisement: within A's interval.
    assert.equal(at[1] - restarted, Math.ceil(3000 + (20 * 1000) / 256));
    assert.ok(at[2] - at[1] <= 1000 + 2, `B master for ${at[2] - at[1]} ms`);
    assert.equal(a.g.state, 'MASTER');
    const rejected = b.g.status().stats.rejects.replay;
    assert.ok(rejected >= 3 && rejected <= 4, `B refused ${rejected} advertisements of A`);
    // Converged: A now advertises above B's counters, and B accepts every one.
    const before = b.g.status().stats.received;
    net.runUntil(net.clock.now() + 5000);
    assert.equal(b.g.status().stats.rejects.replay, rejected);
    assert.equal(b.g.status().stats.received - before, 5);
  });

  it('a restarted node whose clock is behind is accepted as soon as it has heard the current master', () => {
    const pair = settledPair('192.0.2.1', '192.0.2.2', true, 5000, { preempt: true });
    const { net, b } = pair;
    let a = pair.a;
    net.kill(a);
    net.runUntil(10_000);
    assert.equal(b.g.state, 'MASTER');
    // A is back an hour behind: B's counters are newer than its start, and A preempts from
    // B's next advertisement with B's counter + 1, which B accepts and yields to.
    a = net.add('192.0.2.1', { replay_protection: true, preempt: true }, -3_600_000);
    const restarted = net.clock.now();
    let tookOver: number | null = null;
    net.runUntil(restarted + 5000, (t) => {
      if (tookOver === null && a.g.state === 'MASTER') tookOver = t;
    });
    assert.ok(
      tookOver !== null && tookOver - restarted <= 1100,
      `A master after ${tookOver! - restarted} ms`,
    );
    assert.equal(b.g.state, 'BACKUP');
    assert.equal(a.g.status().stats.rejects.replay + b.g.status().stats.rejects.replay, 0);
  });
});

describe('groupParams', () => {
  it('gives every group parameters of one hidden class, whatever their values', () => {
    // The engine reads these fields per packet; with one class per group (a spread made them),
    // 4080 groups missed V8's lookup cache on every read (docs/performance.md).
    v8.setFlagsFromString('--allow-natives-syntax');
    const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
    const params = Array.from({ length: 64 }, (_, i) =>
      groupParams(
        normalizeGroup(
          `g${i}`,
          { vhid: i + 1, interface: 'eth0', addresses: [`198.18.0.${i + 1}/32`], advskew: i % 5 },
          // A source above 2^31 is a heap number, an unknown one the small integer 0.
          { srcip: i % 3 === 0 ? '' : `203.0.113.${i + 1}`, password: PASSWORD },
        ),
      ),
    );
    params.forEach((p, i) => assert.ok(sameMap(params[1], p), `group ${i} has its own hidden class`));
  });
});
