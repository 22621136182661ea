// InterfaceHub with fake sockets: demultiplexing by (destination, vhid), own sources and
// memberships per group, and who is blamed for a malformed packet.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { InterfaceHub, type HubDeps, type HubGroup, type HubSocket } from '../../src/runtime/interface-hub';
import { normalizeGroup } from '../../src/config/normalize';
import type { GroupConfig } from '../../src/config/types';
import type { Framing, RejectReason } from '../../src/protocol/carp';
import type { LinkInfo } from '../../src/net/rtnl';
import { fakeLog } from '../helpers/fake-log';
import { carpPayload, ipv4Packet } from '../helpers/packets';
import { VhidInUseError } from '../../src/errors';
import { encodeVrrp } from '../../src/protocol/vrrp';
import { ipv4ToBytes } from '../../src/net/ipv4';

class FakeSocket extends EventEmitter {
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
  send(): void {}
  close(): void {}
  deliver(buf: Buffer): void {
    this.emit('packet', buf, '');
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

function hub() {
  const sock = new FakeSocket();
  const deps: HubDeps = {
    openSocket: () => sock as unknown as HubSocket,
    garpSender: () => ({ open: () => 0, send() {}, close() {} }),
  };
  const h = new InterfaceHub('eth0', fakeLog().log, deps);
  h.attach(LINK);
  return { sock, hub: h };
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
    const c = group('c', 5);
    const v = group('v', 5, { protocol: 'vrrp3' });
    h.add(c);
    h.add(v);
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
});
