// The unsolicited neighbour advertisement frame (docs/protocol.md §21), field by field.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildNeighbourAdvert, icmpv6Checksum, NA_FRAME_LENGTH } from '../../src/net/ndp';
import { internetChecksum } from '../../src/protocol/checksum';

const MAC = Buffer.from('02000000aa01', 'hex');

describe('buildNeighbourAdvert', () => {
  const f = buildNeighbourAdvert(MAC, 'fe80::1', '2001:db8:1::10');

  it('is an Ethernet frame to 33:33:00:00:00:01 from our MAC, type IPv6', () => {
    assert.equal(f.length, NA_FRAME_LENGTH);
    assert.equal(f.subarray(0, 14).toString('hex'), '333300000001' + '02000000aa01' + '86dd');
  });

  it('IPv6: version 6, payload 32, next header 58, hop limit 255, from src to ff02::1', () => {
    const ip = f.subarray(14, 54);
    assert.equal(ip.toString('hex', 0, 8), '60000000' + '0020' + '3a' + 'ff');
    assert.equal(ip.toString('hex', 8, 24), 'fe800000000000000000000000000001');
    assert.equal(ip.toString('hex', 24, 40), 'ff020000000000000000000000000001');
  });

  it('ICMPv6 136, override flag only, the target, and its link-layer address option', () => {
    const na = f.subarray(54);
    assert.equal(na[0], 136);
    assert.equal(na[1], 0);
    assert.equal(na.toString('hex', 4, 8), '20000000');
    assert.equal(na.toString('hex', 8, 24), '20010db8000100000000000000000010');
    assert.equal(na.toString('hex', 24, 32), '0201' + '02000000aa01');
  });

  it('carries a valid ICMPv6 checksum (pseudo-header included)', () => {
    const na = f.subarray(54);
    assert.equal(icmpv6Checksum(f.subarray(22, 38), f.subarray(38, 54), na), na.readUInt16BE(2));
    const pseudo = Buffer.concat([f.subarray(22, 54), Buffer.from([0, 0, 0, 32, 0, 0, 0, 58]), na]);
    assert.equal(internetChecksum(pseudo), 0);
  });

  it('rejects a MAC that is not 6 bytes', () => {
    assert.throws(() => buildNeighbourAdvert(Buffer.alloc(5), 'fe80::1', '2001:db8::1'));
  });
});
