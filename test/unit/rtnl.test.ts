// Address notifications and dumps as the daemon reads them (addressOf): both families, IPv6 in
// canonical text, and duplicate address detection still running (a source not to use yet).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { rt } from 'netlink';
import { addressOf } from '../../src/net/rtnl';
import { ipv6ToBytes } from '../../src/net/ipv6';

const msg = (data: rt.Address, attrs: rt.AddressAttrs): rt.AddressMessage => ({
  kind: 'address',
  data,
  attrs,
});

describe('addressOf', () => {
  it('an IPv4 address, from IFA_LOCAL', () => {
    const m = msg({ family: 2, prefixlen: 24, index: 3 }, { local: Buffer.from([192, 0, 2, 1]) });
    assert.deepEqual(addressOf(m), {
      index: 3,
      prefixlen: 24,
      family: 4,
      address: '192.0.2.1',
      tentative: false,
    });
  });

  it('an IPv6 address, from IFA_ADDRESS, in canonical text', () => {
    const m = msg({ family: 10, prefixlen: 64, index: 3 }, { address: ipv6ToBytes('2001:db8:1:0:0:0:0:10') });
    assert.deepEqual(addressOf(m), {
      index: 3,
      prefixlen: 64,
      family: 6,
      address: '2001:db8:1::10',
      tentative: false,
    });
  });

  it('tentative in the ifaddrmsg flags or in IFA_FLAGS', () => {
    const a = ipv6ToBytes('fe80::1');
    assert.equal(addressOf(msg({ family: 10, flags: { tentative: true } }, { address: a }))?.tentative, true);
    assert.equal(addressOf(msg({ family: 10 }, { address: a, flags: { tentative: true } }))?.tentative, true);
    assert.equal(
      addressOf(msg({ family: 10, flags: { permanent: true } }, { address: a }))?.tentative,
      false,
    );
  });

  it('other families and malformed addresses are skipped', () => {
    assert.equal(addressOf(msg({ family: 17 }, { address: Buffer.alloc(6) })), undefined);
    assert.equal(addressOf(msg({ family: 10 }, { address: Buffer.alloc(4) })), undefined);
    assert.equal(addressOf(msg({ family: 2 }, {})), undefined);
  });
});
