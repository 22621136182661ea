// GroupRuntime with a fake clock and fake I/O: the driver's own rules (timers and the early
// wake, send failures fed back, link events, stop and bow-out, addresses), without sockets.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GroupRuntime, type GroupIo } from '../../src/runtime/group-runtime';
import { AfterBatch } from '../../src/util/after-batch';
import { normalizeGroup } from '../../src/config/normalize';
import type { GroupConfig } from '../../src/config/types';
import { CARP_HEADER_LEN, parseFraming } from '../../src/protocol/carp';
import { FakeClock } from '../helpers/fake-clock';
import { fakeLog } from '../helpers/fake-log';
import { carpPayload, ipv4Packet } from '../helpers/packets';

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
  constructor(private readonly clock: FakeClock) {}
  send(payload: Buffer, dst: string, src: string): void {
    if (this.failSends) throw new Error('No such device');
    assert.equal(payload.length, CARP_HEADER_LEN);
    this.sent.push({ at: this.clock.now(), advbase: payload[5], advskew: payload[2], dst, src });
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
