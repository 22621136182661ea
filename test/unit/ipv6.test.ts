// IPv6 text, bytes and values: the canonical form every part compares, and family questions.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors';
import {
  Ipv6TextMemo,
  Ipv6ValueMemo,
  bigIntToIpv6,
  bytesToIpv6,
  canonicalIp,
  canonicalIpv6,
  compareAddresses,
  familyOf,
  formatSource,
  ipv6ToBigInt,
  ipv6ToBytes,
  isLinkLocal6,
  isMulticast6,
  sourceOf,
} from '../../src/net/ipv6';

describe('ipv6', () => {
  it('parses every spelling to the same 16 bytes', () => {
    const want = '20010db8000100000000000000000010';
    for (const s of ['2001:db8:1::10', '2001:0DB8:0001:0000:0000:0000:0000:0010', '2001:db8:1:0:0:0:0:10'])
      assert.equal(ipv6ToBytes(s).toString('hex'), want);
    assert.equal(ipv6ToBytes('::ffff:192.0.2.1').toString('hex'), '00000000000000000000ffffc0000201');
    assert.equal(ipv6ToBytes('::').toString('hex'), '0'.repeat(32));
    assert.throws(() => ipv6ToBytes('192.0.2.1'), InvalidArgumentError);
  });

  it('formats as RFC 5952 (as ip addr prints): longest zero run, first on a tie, never one group', () => {
    for (const [text, canonical] of [
      ['2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['FF02:0:0:0:0:0:0:12', 'ff02::12'],
      ['::1', '::1'],
      ['1::', '1::'],
    ])
      assert.equal(canonicalIpv6(text), canonical, text);
    assert.equal(bytesToIpv6(Buffer.alloc(16)), '::');
  });

  it('128-bit values round-trip and order like the bytes', () => {
    const v = ipv6ToBigInt('fe80::1');
    assert.equal(v, (0xfe80n << 112n) | 1n);
    assert.equal(bigIntToIpv6(v), 'fe80::1');
    assert.ok(ipv6ToBigInt('2001:db8::2') < ipv6ToBigInt('2001:db8::10'));
  });

  it('families, sources and order', () => {
    assert.equal(familyOf('2001:db8::1/64'), 6);
    assert.equal(familyOf('192.0.2.1/24'), 4);
    assert.throws(() => familyOf('nope'), InvalidArgumentError);
    assert.equal(sourceOf('192.0.2.1'), 0xc0000201);
    assert.equal(sourceOf('::2'), 2n);
    assert.equal(formatSource(0xc0000201), '192.0.2.1');
    assert.equal(formatSource(2n), '::2');
    assert.equal(canonicalIp('192.0.2.1'), '192.0.2.1');
    assert.equal(canonicalIp('2001:DB8::0:1'), '2001:db8::1');
    assert.ok(compareAddresses('2001:db8::2', '2001:db8::10') < 0);
    assert.ok(compareAddresses('192.0.2.10', '192.0.2.9') > 0);
  });

  it('multicast and link-local', () => {
    assert.ok(isMulticast6('ff02::12'));
    assert.ok(!isMulticast6('2001:db8::1'));
    assert.ok(isLinkLocal6('fe80::1'));
    assert.ok(isLinkLocal6('febf::1'));
    assert.ok(!isLinkLocal6('fec0::1'));
  });
});

describe('memos of the receive path', () => {
  it('Ipv6TextMemo gives the text of the bytes at hand, reusing it only while they are unchanged', () => {
    const memo = new Ipv6TextMemo();
    const buf = Buffer.alloc(40);
    ipv6ToBytes('fe80::1').copy(buf, 4);
    const first = memo.read(buf, 4);
    assert.equal(first, 'fe80::1');
    assert.equal(memo.read(buf, 4), first);
    ipv6ToBytes('fe80::2').copy(buf, 4);
    assert.equal(memo.read(buf, 4), 'fe80::2');
    ipv6ToBytes('2001:db8::1').copy(buf, 20);
    assert.equal(memo.read(buf, 20), '2001:db8::1');
    assert.equal(memo.read(buf, 4), 'fe80::2');
    // All zeroes is an address like any other, not "nothing read yet".
    assert.equal(new Ipv6TextMemo().read(Buffer.alloc(16), 0), '::');
  });

  it('Ipv6ValueMemo parses each address once and stays bounded', () => {
    const memo = new Ipv6ValueMemo(2);
    assert.equal(memo.get('fe80::1'), ipv6ToBigInt('fe80::1'));
    assert.equal(memo.get('fe80::2'), ipv6ToBigInt('fe80::2'));
    assert.equal(memo.get('2001:db8::3'), ipv6ToBigInt('2001:db8::3'));
    assert.equal(memo.get('fe80::1'), ipv6ToBigInt('fe80::1'));
  });
});
