// InterfaceHub with fake sockets: demultiplexing by (destination, vhid), own sources and
// memberships per group, and who is blamed for a malformed packet.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import {
  InterfaceHub,
  type HubDeps,
  type HubGroup,
  type HubSocket,
  type HubSocket6,
} from '../../src/runtime/interface-hub';
import type { Packet6 } from '../../src/net/transport6';
import { normalizeGroup } from '../../src/config/normalize';
import type { GroupConfig } from '../../src/config/types';
import {
  authPrefix6,
  encodeAdvertisement,
  passwordKey,
  type Framing,
  type RejectReason,
} from '../../src/protocol/carp';
import { ipv6ToBytes } from '../../src/net/ipv6';
import type { LinkInfo } from '../../src/net/rtnl';
import { fakeLog } from '../helpers/fake-log';
import { carpPayload, ipv4Packet } from '../helpers/packets';
import { VhidInUseError } from '../../src/errors';
import { encodeVrrp } from '../../src/protocol/vrrp';
import { ipv4ToBytes } from '../../src/net/ipv4';

/** What both fake sockets record: multicast memberships and own sources. */
class FakeMemberships extends EventEmitter {
  joined: string[] = [];
  sources: string[] = [];
  join(group: string): void {
    this.joined.push(group);
  }
  leave(group: string): void {
    this.joined.splice(this.joined.indexOf(group), 1);
  }
  addLocalSource(a: string): void {
    this.sources.push(a);
  }
  removeLocalSource(a: string): void {
    this.sources.splice(this.sources.indexOf(a), 1);
  }
  close(): void {}
}

class FakeSocket extends FakeMemberships {
  /** What reached the wire, in order: 'advert' per transmitted advertisement. */
  wire: string[] = [];
  private queued = 0;
  queue(): void {
    this.queued++;
  }
  transmit(): void {
    for (; this.queued > 0; this.queued--) this.wire.push('advert');
  }
  deliver(buf: Buffer): void {
    this.emit('packet', buf);
  }
}

class FakeGroup implements HubGroup {
  packets: Framing[] = [];
  rejects: RejectReason[] = [];
  constructor(readonly config: GroupConfig) {}
  onPacket(_pkt: Buffer, framing: Framing): void {
    this.packets.push(framing);
  }
  reject(reason: RejectReason): void {
    this.rejects.push(reason);
  }
}

const LINK: LinkInfo = { index: 3, name: 'eth0', mac: Buffer.alloc(6, 1), up: true, running: true };

class FakeSocket6 extends FakeMemberships {
  sent: { dst: string; src: string; ifindex: number }[] = [];
  opened = 0;
  queue(
    _payload: Buffer,
    dst: string,
    src: string,
    ifindex: number,
    done: (err: Error | null) => void,
  ): void {
    this.sent.push({ dst, src, ifindex });
    done(null);
  }
  transmit(): void {}
  deliver(pkt: Packet6): void {
    this.emit('packet', pkt);
  }
}

function hub() {
  const sock = new FakeSocket();
  const sock6 = new FakeSocket6();
  const announced: { arp: string[][]; na: { targets: string[]; src: string }[] } = { arp: [], na: [] };
  const deps: HubDeps = {
    openSocket: () => sock as unknown as HubSocket,
    openSocket6: () => {
      sock6.opened++;
      return sock6 as unknown as HubSocket6;
    },
    garpSender: () => {
      let waiting: ((err: Error | null) => void)[] = [];
      return {
        open: () => 0,
        queuedFrames: 0,
        queue(a: string[], done: (err: Error | null) => void) {
          announced.arp.push(a);
          waiting.push(done);
        },
        queueNeighbourAdverts(targets: string[], src: string, done: (err: Error | null) => void) {
          announced.na.push({ targets, src });
          waiting.push(done);
        },
        flush() {
          sock.wire.push('arp');
          const told = waiting;
          waiting = [];
          for (const d of told) d(null);
        },
        close() {},
      };
    },
  };
  const logs = fakeLog();
  const h = new InterfaceHub('eth0', logs.log, deps);
  h.attach(LINK);
  return { sock, sock6, announced, hub: h, logs };
}

function group(
  name: string,
  vhid: number,
  patch: Record<string, unknown> = {},
  srcip = '192.0.2.1',
): FakeGroup {
  return new FakeGroup(
    normalizeGroup(
      name,
      { vhid, interface: 'eth0', addresses: [`192.0.2.${100 + vhid}/24`], ...patch },
      {
        srcip,
        password: 'pw',
      },
    ),
  );
}

/** A CARP group `c` and a VRRPv3 group `v` of the same number on one hub. */
function carpAndVrrp(
  h: InterfaceHub,
  make: (name: string, vhid: number, patch?: Record<string, unknown>) => FakeGroup,
  vhid: number,
): { c: FakeGroup; v: FakeGroup } {
  const c = make('c', vhid);
  const v = make('v', vhid, { protocol: 'vrrp3' });
  h.add(c);
  h.add(v);
  return { c, v };
}

const vrrp = (vhid: number, dst = '224.0.0.18', src = '192.0.2.9') =>
  ipv4Packet(
    src,
    dst,
    encodeVrrp(
      { vrid: vhid, priority: 100, interval: 100, addresses: [ipv4ToBytes(`192.0.2.${100 + vhid}`)] },
      ipv4ToBytes(src),
      ipv4ToBytes(dst),
    ),
  );

const carp = (vhid: number, dst = '224.0.0.18', src = '192.0.2.9') =>
  ipv4Packet(src, dst, carpPayload({ vhid, password: 'pw', addresses: [`192.0.2.${100 + vhid}`] }));

describe('InterfaceHub', () => {
  it('names the group whose listening failed', () => {
    const { sock, hub: h, logs } = hub();
    sock.join = () => {
      throw new Error('No buffer space available');
    };
    h.add(group('web', 7));
    assert.deepEqual(logs.at('error'), [
      'group web: cannot listen for vhid 7 on eth0: No buffer space available',
    ]);
  });

  it('hands each packet to the group of its (destination, vhid) and to no other', () => {
    const { sock, hub: h } = hub();
    const a = group('a', 1);
    const b = group('b', 2);
    const c = group('c', 1, { mcast: '239.0.0.1' });
    for (const g of [a, b, c]) h.add(g);
    sock.deliver(carp(1));
    sock.deliver(carp(2));
    sock.deliver(carp(1, '239.0.0.1'));
    assert.deepEqual([a.packets.length, b.packets.length, c.packets.length], [1, 1, 1]);
    assert.equal(c.packets[0].vhid, 1);
  });

  it('counts other groups traffic by reason on the interface, never on a group', () => {
    const { sock, hub: h } = hub();
    const a = group('a', 1);
    h.add(a);
    sock.deliver(carp(7));
    sock.deliver(carp(1, '239.9.9.9'));
    assert.equal(h.rejects.vhid, 1);
    assert.equal(h.rejects.destination, 1);
    assert.deepEqual(a.packets, []);
    assert.deepEqual(a.rejects, []);
  });

  it('blames a malformed packet on the group it names, and counts it on the interface too', () => {
    const { sock, hub: h } = hub();
    const a = group('a', 1);
    h.add(a);
    sock.deliver(
      ipv4Packet('192.0.2.9', '224.0.0.18', carpPayload({ vhid: 1, password: 'pw', addresses: [] }), 64),
    );
    // A well-formed VRRPv3 advertisement with this CARP group's number: the peer speaks VRRP.
    sock.deliver(vrrp(1));
    sock.deliver(Buffer.alloc(10));
    assert.deepEqual(a.rejects, ['ttl', 'version']);
    assert.equal(h.rejects.ttl, 1);
    assert.equal(h.rejects.short, 1);
    assert.equal(h.rejects.version, 1);
  });

  it('demultiplexes by protocol first: a CARP and a VRRP group may share a number', () => {
    const { sock, hub: h } = hub();
    const { c, v } = carpAndVrrp(h, group, 5);
    sock.deliver(carp(5));
    sock.deliver(vrrp(5));
    sock.deliver(vrrp(5));
    assert.deepEqual(
      c.packets.map((f) => f.version),
      [2],
    );
    assert.deepEqual(
      v.packets.map((f) => f.version),
      [3, 3],
    );
    assert.throws(() => h.add(group('v2', 5, { protocol: 'vrrp3' })), VhidInUseError);
    // A VRRP packet of a malformed length is blamed on the VRRP group, not the CARP one.
    const short = vrrp(5);
    short[23] = 4;
    sock.deliver(short);
    assert.deepEqual([c.rejects, v.rejects], [[], ['length']]);
  });

  it('registers each group source as our own (so our packets are dropped) and its membership', () => {
    const { sock, hub: h } = hub();
    const a = group('a', 1);
    const b = group('b', 2, { mcast: '239.0.0.1' }, '192.0.2.2');
    const bc = group('bc', 3, { broadcast: true });
    for (const g of [a, b, bc]) h.add(g);
    assert.deepEqual(sock.joined, ['224.0.0.18', '239.0.0.1']);
    assert.deepEqual(sock.sources, ['192.0.2.1', '192.0.2.2', '192.0.2.1']);
    h.remove(b);
    assert.deepEqual(sock.joined, ['224.0.0.18']);
    assert.deepEqual(sock.sources, ['192.0.2.1', '192.0.2.1']);
    assert.equal(h.size, 2);
  });

  it('a unicast group joins no multicast group and hears packets sent to its own address', () => {
    const { sock, hub: h } = hub();
    const u = group('u', 5, { peers: ['192.0.2.9'] });
    h.add(u);
    assert.deepEqual(sock.joined, []);
    assert.deepEqual(sock.sources, ['192.0.2.1']);
    sock.deliver(carp(5, '192.0.2.1'));
    sock.deliver(carp(5));
    assert.equal(u.packets.length, 1);
    assert.equal(h.rejects.destination, 1);
  });

  it('refuses a second group on the same (destination, vhid)', () => {
    const { hub: h } = hub();
    h.add(group('a', 1));
    assert.throws(() => h.add(group('b', 1)), VhidInUseError);
  });

  describe('IPv6 groups (docs/protocol.md §21)', () => {
    const LL = 'fe80::1';
    const group6 = (name: string, vhid: number, patch: Record<string, unknown> = {}, srcip = LL) =>
      new FakeGroup(
        normalizeGroup(
          name,
          { vhid, interface: 'eth0', addresses: [`2001:db8:1::${vhid}/64`], ...patch },
          { srcip, password: 'pw' },
        ),
      );
    const key = passwordKey('pw');
    const adv6 = (vhid: number) =>
      encodeAdvertisement(
        { vhid, advbase: 1, advskew: 0, counter: 1n },
        key,
        authPrefix6(vhid, [ipv6ToBytes(`2001:db8:1::${vhid}`)]),
      );
    const pkt6 = (vhid: number, patch: Partial<Packet6> = {}): Packet6 => ({
      payload: adv6(vhid),
      src: 'fe80::9',
      dst: 'ff02::12',
      hopLimit: 255,
      ifindex: LINK.index,
      ...patch,
    });

    it('opens the IPv6 socket only for the first IPv6 group, joins ff02::12, and owns its source', () => {
      const { sock, sock6, hub: h } = hub();
      h.add(group('v4', 1));
      assert.equal(sock6.opened, 0, 'an IPv4-only interface needs no IPv6 socket');
      h.add(group6('a', 1));
      h.add(group6('b', 2));
      assert.equal(sock6.opened, 1);
      assert.deepEqual(sock6.joined, ['ff02::12', 'ff02::12']);
      assert.deepEqual(sock6.sources, [LL, LL]);
      assert.deepEqual(sock.joined, ['224.0.0.18']);
      assert.equal(h.size, 3);
    });

    it('demultiplexes by (destination, vhid) next to an IPv4 group of the same vhid', () => {
      const { sock, sock6, hub: h } = hub();
      const v4 = group('v4', 1);
      const a = group6('a', 1);
      const b = group6('b', 2);
      for (const g of [v4, a, b]) h.add(g);
      sock6.deliver(pkt6(1));
      sock6.deliver(pkt6(2));
      sock.deliver(carp(1));
      assert.equal(a.packets.length, 1);
      assert.equal(a.packets[0].src, (0xfe80n << 112n) | 9n);
      assert.equal(b.packets.length, 1);
      assert.equal(v4.packets.length, 1);
      sock6.deliver(pkt6(3));
      sock6.deliver(pkt6(1, { dst: 'ff02::99' }));
      assert.equal(h.rejects.vhid, 1);
      assert.equal(h.rejects.destination, 1);
    });

    it('VRRPv3 over IPv6: demultiplexed apart from a CARP group of the same vhid; hop limit checked', () => {
      const { sock6, hub: h } = hub();
      const { c, v } = carpAndVrrp(h, group6, 1);
      const vrrp6 = encodeVrrp(
        { vrid: 1, priority: 100, interval: 100, addresses: [ipv6ToBytes('2001:db8:1::1')] },
        ipv6ToBytes('fe80::9'),
        ipv6ToBytes('ff02::12'),
      );
      sock6.deliver(pkt6(1));
      sock6.deliver(pkt6(1, { payload: vrrp6 }));
      assert.deepEqual([c.packets.map((f) => f.version), v.packets.map((f) => f.version)], [[2], [3]]);
      sock6.deliver(pkt6(1, { payload: vrrp6, hopLimit: 1 }));
      assert.deepEqual([c.rejects, v.rejects], [[], ['ttl']]);
    });

    it('a hop limit other than 255 is a ttl rejection, on the interface and on the group', () => {
      const { sock6, hub: h } = hub();
      const a = group6('a', 1);
      h.add(a);
      sock6.deliver(pkt6(1, { hopLimit: 64 }));
      assert.deepEqual(a.rejects, ['ttl']);
      assert.equal(a.packets.length, 0);
      assert.equal(h.rejects.ttl, 1);
    });

    it('sends IPv6 through the IPv6 socket on the interface index, IPv4 through the IPv4 one', () => {
      const { sock6, hub: h } = hub();
      h.add(group6('a', 1));
      h.send(adv6(1), 'ff02::12', LL, () => undefined);
      assert.deepEqual(sock6.sent, [{ dst: 'ff02::12', src: LL, ifindex: LINK.index }]);
    });

    it('announces IPv4 addresses with ARP and IPv6 ones with neighbour advertisements', () => {
      const { announced, hub: h } = hub();
      h.sendGarp(['2001:db8:1::1', '2001:db8:1::2'], LL, () => undefined);
      h.sendGarp(['192.0.2.1'], '', () => undefined);
      assert.deepEqual(announced.na, [{ targets: ['2001:db8:1::1', '2001:db8:1::2'], src: LL }]);
      assert.deepEqual(announced.arp, [['192.0.2.1']]);
    });

    it('a turn of gratuitous ARPs goes out together at its end, after its advertisements', async () => {
      const { sock, hub: h, announced } = hub();
      const told: (Error | null)[] = [];
      for (const vip of ['192.0.2.100', '192.0.2.101']) {
        h.send(
          carpPayload({ vhid: 1, password: 'x', addresses: [vip] }),
          '224.0.0.18',
          '192.0.2.1',
          () => undefined,
        );
        h.sendGarp([vip], '', (err) => told.push(err));
      }
      assert.deepEqual(sock.wire, []);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(sock.wire, ['advert', 'advert', 'arp']);
      assert.deepEqual(announced.arp, [['192.0.2.100'], ['192.0.2.101']]);
      assert.deepEqual(told, [null, null]);
    });

    it('an interface deleted and created again: IPv6 groups get a new socket, membership and source', () => {
      const { sock, sock6, hub: h } = hub();
      h.add(group('v4', 1));
      h.add(group6('a', 1));
      h.detach();
      // The kernel dropped the memberships with the old interface.
      sock.joined = [];
      sock6.joined = [];
      sock6.sources = [];
      h.attach(LINK);
      assert.deepEqual(sock.joined, ['224.0.0.18']);
      assert.equal(sock6.opened, 2, 'a new IPv6 socket on the new interface');
      assert.deepEqual(sock6.joined, ['ff02::12']);
      assert.deepEqual(sock6.sources, [LL]);
    });

    it('a group removed leaves its membership and source', () => {
      const { sock6, hub: h } = hub();
      const a = group6('a', 1);
      h.add(a);
      h.remove(a);
      assert.deepEqual(sock6.joined, []);
      assert.deepEqual(sock6.sources, []);
      assert.equal(h.size, 0);
    });
  });
});
