import { InvalidArgumentError } from '../../src/errors';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CARP_TOS,
  CARP_TTL,
  IPPROTO_CARP,
  IP_FLAG_DF,
  buildIpv4Header,
  internetChecksum,
  intToIpv4,
  ipDst,
  ipDstString,
  ipFlagsFragment,
  ipHeaderLength,
  ipProtocol,
  ipSrc,
  ipSrcString,
  ipTos,
  ipTtl,
  ipv4ToInt,
  isMulticast,
} from '../../src/net/ipv4';

// First 20 bytes of an advertisement sent by the real ucarp 1.5.2 binary
// (`ucarp -i eth0 -s 192.0.2.1 -v 7 …`), captured with tcpdump -x: id 0x38fc, checksum 0xa035.
const UCARP_HEADER = Buffer.from('4510003838fc4000ff70a035c0000201e0000012', 'hex');

describe('ipv4ToInt / intToIpv4', () => {
  it('parses dotted quads into network-order uint32 values', () => {
    assert.equal(ipv4ToInt('192.0.2.1'), 0xc0000201);
    assert.equal(ipv4ToInt('0.0.0.0'), 0);
    assert.equal(ipv4ToInt('255.255.255.255'), 0xffffffff);
    assert.equal(ipv4ToInt('224.0.0.18'), 0xe0000012);
  });

  it('formats uint32 values as dotted quads and round-trips', () => {
    for (const a of ['192.0.2.1', '0.0.0.0', '255.255.255.255', '203.0.113.254', '10.0.1.2']) {
      assert.equal(intToIpv4(ipv4ToInt(a)), a);
    }
    assert.equal(intToIpv4(0xe0000012), '224.0.0.18');
  });

  it('rejects anything that is not an IPv4 address', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', 'a.b.c.d', '::1', ' 1.2.3.4']) {
      assert.throws(() => ipv4ToInt(bad), InvalidArgumentError, bad);
    }
    for (const bad of [-1, 0x100000000, 1.5, NaN]) {
      assert.throws(() => intToIpv4(bad), InvalidArgumentError, String(bad));
    }
  });

  it('recognises multicast addresses (224.0.0.0/4)', () => {
    assert.equal(isMulticast(ipv4ToInt('224.0.0.18')), true);
    assert.equal(isMulticast(ipv4ToInt('239.255.255.255')), true);
    assert.equal(isMulticast(ipv4ToInt('223.255.255.255')), false);
    assert.equal(isMulticast(ipv4ToInt('240.0.0.0')), false);
    assert.equal(isMulticast(ipv4ToInt('255.255.255.255')), false);
  });
});

describe('IPv4 header readers', () => {
  it('read every field of a real ucarp advertisement', () => {
    assert.equal(ipHeaderLength(UCARP_HEADER), 20);
    assert.equal(ipTos(UCARP_HEADER), 0x10);
    assert.equal(ipTtl(UCARP_HEADER), 255);
    assert.equal(ipProtocol(UCARP_HEADER), 112);
    assert.equal(ipFlagsFragment(UCARP_HEADER), IP_FLAG_DF);
    assert.equal(ipSrc(UCARP_HEADER), 0xc0000201);
    assert.equal(ipDst(UCARP_HEADER), 0xe0000012);
    assert.equal(ipSrcString(UCARP_HEADER), '192.0.2.1');
    assert.equal(ipDstString(UCARP_HEADER), '224.0.0.18');
  });

  it('honour the IHL nibble (header with options)', () => {
    const h = Buffer.from(UCARP_HEADER);
    h[0] = 0x46;
    assert.equal(ipHeaderLength(h), 24);
  });

  it('read high source bytes as unsigned', () => {
    const h = Buffer.from(UCARP_HEADER);
    h.writeUInt32BE(0xfffffffe, 12);
    assert.equal(ipSrc(h), 0xfffffffe);
  });
});

describe('internetChecksum', () => {
  it('is the RFC 1071 sum: a valid header sums to zero, zeroed checksum gives the stored one', () => {
    assert.equal(internetChecksum(UCARP_HEADER, 0, 20), 0);
    const h = Buffer.from(UCARP_HEADER);
    h.writeUInt16BE(0, 10);
    assert.equal(internetChecksum(h, 0, 20), 0xa035);
  });

  it('works on a sub-range and pads an odd length with a zero byte', () => {
    const b = Buffer.concat([Buffer.from([0xaa, 0xbb]), UCARP_HEADER, Buffer.from([0xcc])]);
    assert.equal(internetChecksum(b, 2, 22), 0);
    assert.equal(internetChecksum(Buffer.from([0x01]), 0, 1), ~0x0100 & 0xffff);
  });
});

describe('buildIpv4Header', () => {
  it('reproduces the header ucarp sends, byte for byte, given the same id', () => {
    const h = buildIpv4Header({ src: '192.0.2.1', dst: '224.0.0.18', payloadLength: 36, id: 0x38fc });
    assert.deepEqual(h, UCARP_HEADER);
  });

  it('defaults to a CARP advertisement header with a zero id for the kernel to fill', () => {
    const h = buildIpv4Header({ src: '198.51.100.7', dst: '255.255.255.255', payloadLength: 36 });
    assert.equal(h.length, 20);
    assert.equal(h[0], 0x45);
    assert.equal(ipTos(h), CARP_TOS);
    assert.equal(ipTtl(h), CARP_TTL);
    assert.equal(ipProtocol(h), IPPROTO_CARP);
    assert.equal(ipFlagsFragment(h), IP_FLAG_DF);
    assert.equal(h.readUInt16BE(2), 56);
    assert.equal(h.readUInt16BE(4), 0);
    assert.equal(ipSrcString(h), '198.51.100.7');
    assert.equal(ipDstString(h), '255.255.255.255');
    assert.equal(internetChecksum(h, 0, 20), 0);
  });

  it('accepts uint32 addresses and overrides, and writes in place at an offset', () => {
    const out = Buffer.alloc(30, 0xee);
    const ret = buildIpv4Header(
      { src: 0xc0000232, dst: 0xe0000013, payloadLength: 8, protocol: 17, ttl: 1, tos: 0, df: false, id: 7 },
      out,
      5,
    );
    assert.equal(ret, out);
    assert.equal(out[4], 0xee);
    assert.equal(out[25], 0xee);
    const h = out.subarray(5, 25);
    assert.equal(ipProtocol(h), 17);
    assert.equal(ipTtl(h), 1);
    assert.equal(ipTos(h), 0);
    assert.equal(ipFlagsFragment(h), 0);
    assert.equal(h.readUInt16BE(4), 7);
    assert.equal(h.readUInt16BE(2), 28);
    assert.equal(ipSrcString(h), '192.0.2.50');
    assert.equal(ipDstString(h), '224.0.0.19');
    assert.equal(internetChecksum(h, 0, 20), 0);
  });

  it('rejects bad lengths, addresses and short output buffers', () => {
    const f = { src: '192.0.2.1', dst: '224.0.0.18' };
    assert.throws(() => buildIpv4Header({ ...f, payloadLength: -1 }), InvalidArgumentError);
    assert.throws(() => buildIpv4Header({ ...f, payloadLength: 0xffff - 19 }), InvalidArgumentError);
    assert.throws(() => buildIpv4Header({ ...f, payloadLength: 1.5 }), InvalidArgumentError);
    assert.throws(() => buildIpv4Header({ ...f, src: '192.0.2', payloadLength: 36 }), InvalidArgumentError);
    assert.throws(() => buildIpv4Header({ ...f, dst: 2 ** 32, payloadLength: 36 }), InvalidArgumentError);
    assert.throws(
      () => buildIpv4Header({ ...f, payloadLength: 36 }, Buffer.alloc(20), 1),
      InvalidArgumentError,
    );
  });
});
