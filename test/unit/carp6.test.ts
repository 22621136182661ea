// The IPv6 side of the CARP codec (docs/protocol.md §21): the HMAC input built by FreeBSD's
// carp_hmac_prepare rules, and the framing checks on a payload whose IPv6 header the socket
// already consumed. Known answers were computed by hand from those rules (Python's hmac over
// the bytes listed in §21), not by this code.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  authPrefix6,
  encodeAdvertisement,
  parseFraming6,
  passwordKey,
  verifyAdvertisement,
} from '../../src/protocol/carp';
import { ipv6ToBytes } from '../../src/net/ipv6';
import { InvalidArgumentError } from '../../src/errors';

const A10 = ipv6ToBytes('2001:db8:1::10');
const A20 = ipv6ToBytes('2001:db8:1::20');
// fe80:5::1: FreeBSD keeps a zone in bytes 2–3 of link-local addresses and clears it to hash.
const LL_ZONED = ipv6ToBytes('fe80:5::1');

const PREFIX =
  '020114' +
  '20010db8000100000000000000000010' +
  '20010db8000100000000000000000020' +
  'fe800000000000000000000000000001';
const COUNTER = 0x0000000100000002n;
const HEADER = '21146407000147b500000001000000020d26ce919c90341aa91a81745bb59a29c2cfa38a';

describe('authPrefix6 (carp_hmac_prepare for INET6)', () => {
  it('version, type, vhid, then the addresses ascending byte by byte, scope bytes cleared', () => {
    assert.equal(authPrefix6(20, [LL_ZONED, A20, A10]).toString('hex'), PREFIX);
  });

  it('the order of the list does not matter, and a repeated address is hashed once', () => {
    assert.equal(authPrefix6(20, [A10, LL_ZONED, A10, A20, A20]).toString('hex'), PREFIX);
  });

  it(':: and ffff:…:ffff are never hashed (the loop cannot pick them)', () => {
    const none = authPrefix6(7, [Buffer.alloc(16), Buffer.alloc(16, 0xff)]);
    assert.equal(none.toString('hex'), '020107');
  });

  it('a link-local multicast address has its scope bytes cleared too; a global one not', () => {
    const mc = authPrefix6(1, [ipv6ToBytes('ff02:3::1'), ipv6ToBytes('ff0e:3::1')]);
    assert.equal(mc.subarray(3, 19).toString('hex'), 'ff020000000000000000000000000001');
    assert.equal(mc.subarray(19).toString('hex'), 'ff0e0003000000000000000000000001');
  });

  it('rejects an address that is not 16 bytes', () => {
    assert.throws(() => authPrefix6(1, [Buffer.alloc(4)]), InvalidArgumentError);
  });
});

describe('an IPv6 advertisement (known answer)', () => {
  const key = passwordKey('s3cret');
  const prefix = authPrefix6(20, [A10, A20, LL_ZONED]);

  it('encodes to the header computed from the rules: checksum over the 36 CARP bytes only', () => {
    const out = encodeAdvertisement({ vhid: 20, advbase: 1, advskew: 100, counter: COUNTER }, key, prefix);
    assert.equal(out.toString('hex'), HEADER);
  });

  it('verifies and decodes the known header', () => {
    const r = verifyAdvertisement(Buffer.from(HEADER, 'hex'), 0, key, prefix);
    assert.ok(r.ok);
    assert.deepEqual(r.adv, { vhid: 20, advskew: 100, demote: 0, advbase: 1, counter: COUNTER });
  });

  it('another address list gives a digest rejection', () => {
    const r = verifyAdvertisement(Buffer.from(HEADER, 'hex'), 0, key, authPrefix6(20, [A10]));
    assert.deepEqual(r, { ok: false, reason: 'digest' });
  });
});

describe('parseFraming6', () => {
  const pkt = Buffer.from(HEADER, 'hex');
  const src = 0xfe80n << 112n;
  const dst = 0xff02n << 112n;

  it('accepts a 36-byte advertisement with hop limit 255', () => {
    assert.deepEqual(parseFraming6(pkt, 255, src, dst), {
      ok: true,
      framing: { offset: 0, src, dst, vhid: 20, version: 2 },
    });
  });

  it('checks in ucarp order: short, hop limit, version, type, length', () => {
    assert.deepEqual(parseFraming6(pkt.subarray(0, 35), 255, src, dst), { ok: false, reason: 'short' });
    assert.deepEqual(parseFraming6(pkt, 64, src, dst), { ok: false, reason: 'ttl' });
    assert.deepEqual(parseFraming6(pkt, -1, src, dst), { ok: false, reason: 'ttl' });
    const v3 = Buffer.from(pkt);
    v3[0] = 0x31;
    assert.deepEqual(parseFraming6(v3, 255, src, dst), { ok: false, reason: 'version' });
    const t2 = Buffer.from(pkt);
    t2[0] = 0x22;
    assert.deepEqual(parseFraming6(t2, 255, src, dst), { ok: false, reason: 'type' });
    assert.deepEqual(parseFraming6(Buffer.concat([pkt, Buffer.alloc(8)]), 255, src, dst), {
      ok: false,
      reason: 'length',
    });
  });
});
