import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeVrrp,
  isVrrpIpv4,
  parseVrrpFraming,
  parseVrrpFraming6,
  verifyVrrp,
  vrrpChecksum,
  VRRP_HEADER_LEN,
} from '../../src/protocol/vrrp';
import { parseFraming } from '../../src/protocol/carp';
import { fromHex, ipv4Packet } from '../helpers/packets';
import { ipv4ToBytes as bytes, ipv4ToInt } from '../../src/net/ipv4';
import { InvalidArgumentError } from '../../src/errors';

// Captured with tcpdump -x from keepalived 2.2.7 (vrrp_version 3) in a network namespace:
//   vrrp_instance { interface eth0; virtual_router_id 30; priority 150; advert_int 1;
//                   virtual_ipaddress { 192.0.2.254/24; 192.0.2.253/24 } }   on 192.0.2.1
// The second is what it sent on SIGTERM: priority 0.
const KEEPALIVED = fromHex([
  '45c0002400010000ff701895c0000201e0000012311e960200640feac00002fec00002fd',
  '45c0002400040000ff701892c0000201e0000012311e00020064a5eac00002fec00002fd',
]);

const SRC = bytes('192.0.2.1');
const DST = bytes('224.0.0.18');
const VIPS = [bytes('192.0.2.254'), bytes('192.0.2.253')];

test("keepalived's advertisements frame, verify and decode", () => {
  const expected = [150, 0];
  KEEPALIVED.forEach((pkt, i) => {
    assert.ok(isVrrpIpv4(pkt));
    const f = parseVrrpFraming(pkt);
    assert.ok(f.ok, f.ok ? '' : f.reason);
    assert.deepEqual(f.framing, {
      offset: 20,
      src: ipv4ToInt('192.0.2.1'),
      dst: ipv4ToInt('224.0.0.18'),
      vhid: 30,
      version: 3,
    });
    const v = verifyVrrp(pkt, 20, SRC, DST);
    assert.ok(v.ok, v.ok ? '' : v.reason);
    assert.equal(v.adv.vrid, 30);
    assert.equal(v.adv.priority, expected[i]);
    assert.equal(v.adv.interval, 100);
    assert.deepEqual(
      v.adv.addresses.map((a) => [...a].join('.')),
      ['192.0.2.254', '192.0.2.253'],
    );
  });
});

test('encoding reproduces keepalived bytes exactly', () => {
  const ours = [150, 0].map((priority) =>
    encodeVrrp({ vrid: 30, priority, interval: 100, addresses: VIPS }, SRC, DST),
  );
  ours.forEach((o, i) => assert.deepEqual(o, KEEPALIVED[i].subarray(20)));
});

test('the checksum covers the IPv4 pseudo-header: another source or destination fails it', () => {
  const pkt = KEEPALIVED[0];
  assert.equal(vrrpChecksum(pkt.subarray(20), SRC, DST), 0);
  assert.deepEqual(verifyVrrp(pkt, 20, bytes('192.0.2.9'), DST), { ok: false, reason: 'checksum' });
  assert.deepEqual(verifyVrrp(pkt, 20, SRC, bytes('192.0.2.2')), { ok: false, reason: 'checksum' });
  // A unicast copy is checksummed for its own destination.
  const uni = encodeVrrp(
    { vrid: 30, priority: 150, interval: 100, addresses: VIPS },
    SRC,
    bytes('192.0.2.2'),
  );
  assert.ok(verifyVrrp(Buffer.concat([Buffer.alloc(20), uni]), 20, SRC, bytes('192.0.2.2')).ok);
  assert.notDeepEqual(uni, pkt.subarray(20));
});

test('the IPv6 pseudo-header: 16-byte addresses, 32-bit length, next header last', () => {
  const src = Buffer.from('fe800000000000000000000000000001', 'hex');
  const dst = Buffer.from('ff020000000000000000000000000012', 'hex');
  const vip = Buffer.from('20010db8000000000000000000000064', 'hex');
  const msg = encodeVrrp({ vrid: 7, priority: 100, interval: 100, addresses: [vip] }, src, dst);
  assert.equal(msg.length, VRRP_HEADER_LEN + 16);
  // The checksum by hand: pseudo-header (src, dst, length 24 as 32 bits, 3 zeros, 112) + message.
  const pseudo = Buffer.concat([src, dst, Buffer.from([0, 0, 0, 24, 0, 0, 0, 112])]);
  const zeroed = Buffer.from(msg);
  zeroed.writeUInt16BE(0, 6);
  let sum = 0;
  const all = Buffer.concat([pseudo, zeroed]);
  for (let i = 0; i < all.length; i += 2) sum += all.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(msg.readUInt16BE(6), ~sum & 0xffff);
  assert.ok(verifyVrrp(msg, 0, src, dst).ok);
  assert.throws(
    () => encodeVrrp({ vrid: 7, priority: 100, interval: 100, addresses: [SRC] }, src, dst),
    InvalidArgumentError,
  );
});

test('framing rejects: ttl, type, length, short; an interval of 0 is refused', () => {
  const msg = encodeVrrp({ vrid: 30, priority: 150, interval: 100, addresses: VIPS }, SRC, DST);
  assert.deepEqual(parseVrrpFraming(ipv4Packet('192.0.2.1', '224.0.0.18', msg, 64)), {
    ok: false,
    reason: 'ttl',
  });
  const typed = Buffer.from(msg);
  typed[0] = 0x32;
  assert.deepEqual(parseVrrpFraming(ipv4Packet('192.0.2.1', '224.0.0.18', typed)), {
    ok: false,
    reason: 'type',
  });
  const counted = Buffer.from(msg);
  counted[3] = 3;
  assert.deepEqual(parseVrrpFraming(ipv4Packet('192.0.2.1', '224.0.0.18', counted)), {
    ok: false,
    reason: 'length',
  });
  assert.deepEqual(parseVrrpFraming(ipv4Packet('192.0.2.1', '224.0.0.18', msg.subarray(0, 6))), {
    ok: false,
    reason: 'short',
  });
  const zero = Buffer.from(msg);
  zero.writeUInt16BE(0, 4);
  zero.writeUInt16BE(0, 6);
  zero.writeUInt16BE(vrrpChecksum(zero, SRC, DST), 6);
  assert.deepEqual(verifyVrrp(zero, 0, SRC, DST), { ok: false, reason: 'interval' });
  assert.throws(
    () => encodeVrrp({ vrid: 1, priority: 1, interval: 4096, addresses: [] }, SRC, DST),
    InvalidArgumentError,
  );
});

test('CARP and VRRPv3 are told apart by version: neither parser takes the other', () => {
  assert.deepEqual(parseFraming(KEEPALIVED[0]), { ok: false, reason: 'short' });
  const carpLike = Buffer.from(KEEPALIVED[0]);
  carpLike[20] = 0x21;
  assert.equal(isVrrpIpv4(carpLike), false);
  assert.deepEqual(parseVrrpFraming(carpLike), { ok: false, reason: 'version' });
});

test('IPv6 framing: hop limit, type, 8 + 16 × count bytes; verified with the IPv6 pseudo-header', () => {
  const src = Buffer.from('fe800000000000000000000000000001', 'hex');
  const dst = Buffer.from('ff020000000000000000000000000012', 'hex');
  const vip = Buffer.from('20010db8000100000000000000000254', 'hex');
  const big = (b: Buffer) => BigInt(`0x${b.toString('hex')}`);
  const msg = encodeVrrp({ vrid: 30, priority: 150, interval: 100, addresses: [vip] }, src, dst);
  const f = parseVrrpFraming6(msg, 255, big(src), big(dst));
  assert.deepEqual(f, {
    ok: true,
    framing: { offset: 0, src: big(src), dst: big(dst), vhid: 30, version: 3 },
  });
  assert.ok(verifyVrrp(msg, 0, src, dst).ok);
  assert.deepEqual(parseVrrpFraming6(msg, 64, big(src), big(dst)), { ok: false, reason: 'ttl' });
  assert.deepEqual(parseVrrpFraming6(msg.subarray(0, 20), 255, big(src), big(dst)), {
    ok: false,
    reason: 'length',
  });
  assert.deepEqual(parseVrrpFraming6(msg.subarray(0, 4), 255, big(src), big(dst)), {
    ok: false,
    reason: 'short',
  });
  const carp = Buffer.from(msg);
  carp[0] = 0x21;
  assert.deepEqual(parseVrrpFraming6(carp, 255, big(src), big(dst)), { ok: false, reason: 'version' });
});

test('encoding into a buffer that holds an earlier advertisement gives the same bytes as a new one', () => {
  const into = Buffer.alloc(VRRP_HEADER_LEN + 4 * VIPS.length);
  for (const priority of [150, 0, 150, 200]) {
    const out = encodeVrrp({ vrid: 30, priority, interval: 100, addresses: VIPS }, SRC, DST, into);
    assert.equal(out, into, 'written in place');
    assert.deepEqual(out, encodeVrrp({ vrid: 30, priority, interval: 100, addresses: VIPS }, SRC, DST));
    assert.equal(vrrpChecksum(out, SRC, DST), 0);
  }
});
