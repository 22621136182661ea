// The table an interface's packets are demultiplexed with (src/runtime/demux-table.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DemuxTable } from '../../src/runtime/demux-table';
import { CARP_VERSION } from '../../src/protocol/carp';
import { VRRP_VERSION } from '../../src/protocol/vrrp';

describe('DemuxTable', () => {
  it('finds a group by destination, vhid and protocol, and by nothing less', () => {
    const t = new DemuxTable<number, string>();
    const mcast = 0xe0000012;
    t.set(mcast, 7, CARP_VERSION, 'carp7');
    t.set(mcast, 7, VRRP_VERSION, 'vrrp7');
    t.set(0xc0000201, 7, CARP_VERSION, 'unicast7');
    assert.equal(t.get(mcast, 7, CARP_VERSION), 'carp7');
    assert.equal(t.get(mcast, 7, VRRP_VERSION), 'vrrp7');
    assert.equal(t.get(0xc0000201, 7, CARP_VERSION), 'unicast7');
    assert.equal(t.get(mcast, 8, CARP_VERSION), undefined);
    assert.equal(t.get(0xc0000201, 7, VRRP_VERSION), undefined);
    assert.equal(t.get(0xe0000013, 7, CARP_VERSION), undefined);
    assert.equal(t.size, 3);
  });

  it('every vhid 0..255 of both protocols has its own place', () => {
    const t = new DemuxTable<string, number>();
    for (let v = 0; v <= 255; v++) {
      t.set('ff02::12', v, CARP_VERSION, v);
      t.set('ff02::12', v, VRRP_VERSION, 1000 + v);
    }
    assert.equal(t.size, 512);
    for (let v = 0; v <= 255; v++) {
      assert.equal(t.get('ff02::12', v, CARP_VERSION), v);
      assert.equal(t.get('ff02::12', v, VRRP_VERSION), 1000 + v);
    }
  });

  it('replacing keeps the count; deleting the last group of a destination drops the destination', () => {
    const t = new DemuxTable<number, string>();
    t.set(1, 1, CARP_VERSION, 'a');
    t.set(1, 1, CARP_VERSION, 'b');
    t.set(2, 1, CARP_VERSION, 'c');
    assert.equal(t.size, 2);
    assert.equal(t.get(1, 1, CARP_VERSION), 'b');
    t.delete(1, 1, CARP_VERSION);
    t.delete(1, 1, CARP_VERSION);
    t.delete(9, 1, CARP_VERSION);
    assert.equal(t.size, 1);
    assert.equal(t.get(1, 1, CARP_VERSION), undefined);
    assert.deepEqual([...t.values()], ['c']);
    t.set(1, 2, CARP_VERSION, 'd');
    assert.deepEqual([...t.values()].sort(), ['c', 'd']);
  });
});
