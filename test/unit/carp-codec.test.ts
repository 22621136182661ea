import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  authPrefix,
  encodeAdvertisement,
  parseFraming,
  passwordKey,
  verifyAdvertisement,
  CARP_HEADER_LEN,
} from '../../src/protocol/carp';
import { internetChecksum } from '../../src/protocol/checksum';
import { ipv4ToInt as ip } from '../../src/net/ipv4';
import { fromHex, ipv4Packet, vrrpPayload } from '../helpers/packets';

// Captured with tcpdump -x from Debian's ucarp 1.5.2:
//   ucarp -i eth0 -s 192.0.2.1 -v 42 -p s3cret -a 192.0.2.100 -b 1 -k 20
const UCARP_PACKETS = fromHex([
  '45100038c0a54000ff70188cc0000201e0000012212a140700016a913bba89cd22908bd1d2dd978d88f2c50d33c1154819c37698ab73af0e',
  '4510003835f34000ff70a33ec0000201e0000012212a14070001aabc3f0a303147a3a240b19e2e74645973285a32e114f88b3b297feb2075',
]);

const KEY = passwordKey('s3cret');
const PREFIX = authPrefix({ key: KEY, vhid: 42, addresses: [ip('192.0.2.100')] });

test('packets from the real ucarp verify and decode', () => {
  for (const pkt of UCARP_PACKETS) {
    const f = parseFraming(pkt);
    assert.ok(f.ok);
    assert.equal(f.framing.offset, 20);
    assert.equal(f.framing.vhid, 42);
    assert.equal(f.framing.src, ip('192.0.2.1'));
    assert.equal(f.framing.dst, ip('224.0.0.18'));
    const v = verifyAdvertisement(pkt, 20, KEY, PREFIX);
    assert.ok(v.ok, v.ok ? '' : v.reason);
    assert.equal(v.adv.advbase, 1);
    assert.equal(v.adv.advskew, 20);
    assert.equal(v.adv.demote, 0);
  }
});

test('encoding reproduces ucarp bytes exactly for the same counter', () => {
  for (const pkt of UCARP_PACKETS) {
    const counter = pkt.readBigUInt64BE(28);
    const ours = encodeAdvertisement({ vhid: 42, advbase: 1, advskew: 20, counter }, KEY, PREFIX);
    assert.equal(ours.length, CARP_HEADER_LEN);
    assert.deepEqual(ours, pkt.subarray(20));
  }
});

test('the digest covers several addresses sorted ascending', () => {
  const a = authPrefix({ key: KEY, vhid: 1, addresses: [ip('192.0.2.20'), ip('192.0.2.3')] });
  const b = authPrefix({ key: KEY, vhid: 1, addresses: [ip('192.0.2.3'), ip('192.0.2.20')] });
  assert.deepEqual(a, b);
  assert.deepEqual(a.subarray(3, 7), Buffer.from([192, 0, 2, 3]));
});

test('a wrong password, vhid or address is a digest rejection', () => {
  const pkt = UCARP_PACKETS[0];
  const wrong = [
    authPrefix({ key: KEY, vhid: 42, addresses: [ip('192.0.2.101')] }),
    authPrefix({ key: KEY, vhid: 43, addresses: [ip('192.0.2.100')] }),
  ];
  for (const p of wrong)
    assert.deepEqual(verifyAdvertisement(pkt, 20, KEY, p), { ok: false, reason: 'digest' });
  assert.deepEqual(verifyAdvertisement(pkt, 20, passwordKey('other'), PREFIX), {
    ok: false,
    reason: 'digest',
  });
});

test('framing rejections carry their reason', () => {
  const base = UCARP_PACKETS[0];
  const mod = (f: (b: Buffer) => void) => {
    const b = Buffer.from(base);
    f(b);
    return parseFraming(b);
  };
  assert.deepEqual(parseFraming(base.subarray(0, 55)), { ok: false, reason: 'short' });
  assert.deepEqual(parseFraming(base.subarray(0, 10)), { ok: false, reason: 'short' });
  assert.deepEqual(
    mod((b) => (b[0] = 0x44)),
    { ok: false, reason: 'short' },
  );
  assert.deepEqual(
    mod((b) => (b[8] = 64)),
    { ok: false, reason: 'ttl' },
  );
  assert.deepEqual(
    mod((b) => (b[20] = 0x31)),
    { ok: false, reason: 'version' },
  );
  assert.deepEqual(
    mod((b) => (b[20] = 0x22)),
    { ok: false, reason: 'type' },
  );
  assert.deepEqual(
    mod((b) => (b[23] = 1)),
    { ok: false, reason: 'length' },
  );
});

test('a corrupted byte fails the checksum before the digest is computed', () => {
  const b = Buffer.from(UCARP_PACKETS[0]);
  b[30] ^= 0xff;
  assert.deepEqual(verifyAdvertisement(b, 20, KEY, PREFIX), { ok: false, reason: 'checksum' });
});

test('internet checksum matches RFC 1071 examples and odd lengths', () => {
  assert.equal(internetChecksum(Buffer.from('0001f203f4f5f6f7', 'hex')), 0x220d);
  assert.equal(internetChecksum(Buffer.from([0xff])), 0x00ff);
  assert.equal(internetChecksum(Buffer.alloc(0)), 0xffff);
});

test('password key is zero padded and longer than 19 bytes is refused', () => {
  assert.deepEqual(passwordKey('ab'), Buffer.concat([Buffer.from('ab'), Buffer.alloc(18)]));
  assert.equal(passwordKey('x'.repeat(19)).length, 20);
  assert.throws(() => passwordKey('x'.repeat(20)), /too long/);
});

// VRRPv2 (version 2, type 1, like CARP) carries its address count where CARP has authlen (7):
// with 7 addresses and zeroed auth data it passed framing and the checksum of its first 36
// bytes, and was counted as a digest failure, pointing operators at the password.
const VRRP_ADDRESSES = Array.from({ length: 8 }, (_, i) => `192.0.2.${101 + i}`);

test('VRRPv2 advertisements with 0..8 addresses are framing rejects, never digest', () => {
  for (let count = 0; count <= 8; count++) {
    const payload = vrrpPayload(42, VRRP_ADDRESSES.slice(0, count));
    assert.equal(payload.length, 8 + 4 * count + 8);
    const pkt = ipv4Packet('192.0.2.2', '224.0.0.18', payload);
    const f = parseFraming(pkt);
    const expected = payload.length < CARP_HEADER_LEN ? 'short' : 'length';
    assert.deepEqual(f, { ok: false, reason: expected }, `VRRPv2 with ${count} addresses`);
  }
});

test('VRRPv2 with 7 addresses and a valid checksum over 36 bytes is still a length reject', () => {
  const payload = vrrpPayload(42, VRRP_ADDRESSES.slice(0, 7));
  assert.equal(payload[3], 7, 'the count sits where CARP has authlen');
  // The auth data after the addresses is zero, so the first 36 bytes sum like the whole packet.
  assert.equal(internetChecksum(payload, 0, CARP_HEADER_LEN), 0);
  const pkt = ipv4Packet('192.0.2.2', '224.0.0.18', payload);
  assert.deepEqual(parseFraming(pkt), { ok: false, reason: 'length' });
  // With the framing skipped, this is what the group saw.
  assert.deepEqual(verifyAdvertisement(pkt, 20, KEY, PREFIX), { ok: false, reason: 'digest' });
});

test('VRRPv3 advertisements with 0..8 addresses are framing rejects', () => {
  for (let count = 0; count <= 8; count++) {
    // VRRPv3 layout: version 3, type 1, VRID, priority, count, max advertisement interval,
    // checksum, addresses; no auth data.
    const payload = Buffer.alloc(8 + 4 * count);
    payload[0] = 0x31;
    payload[1] = 42;
    payload[2] = 100;
    payload[3] = count;
    payload.writeUInt16BE(100, 4);
    VRRP_ADDRESSES.slice(0, count).forEach((a, i) => payload.writeUInt32BE(ip(a), 8 + 4 * i));
    payload.writeUInt16BE(internetChecksum(payload), 6);
    const f = parseFraming(ipv4Packet('192.0.2.2', '224.0.0.18', payload));
    const expected = payload.length < CARP_HEADER_LEN ? 'short' : 'version';
    assert.deepEqual(f, { ok: false, reason: expected }, `VRRPv3 with ${count} addresses`);
  }
});

test('a CARP advertisement with bytes after the 36-byte header is a length reject', () => {
  const pkt = UCARP_PACKETS[0];
  assert.deepEqual(parseFraming(Buffer.concat([pkt, Buffer.alloc(4)])), { ok: false, reason: 'length' });
  assert.deepEqual(parseFraming(Buffer.concat([pkt, Buffer.alloc(1)])), { ok: false, reason: 'length' });
});
