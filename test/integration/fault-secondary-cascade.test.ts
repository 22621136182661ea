// Fault: two groups with addresses in one subnet. The kernel makes the second address a
// secondary of the first, and without promote_secondaries removing the first (a demote, a
// group removed on reload) silently removes the second too: a MASTER with no address.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, waitFor } from '../helpers/netns';
import type { TestGroup } from '../helpers/supervisor-proc';
import { Pair, type Node, holdersOf } from '../helpers/fault';

// 'first' takes over ~40 ms before 'second' (smaller advskew), so its address is added first
// and is the subnet's primary: the one whose removal would cascade.
const groups = (skew: number): TestGroup[] => [
  { name: 'first', vhid: 20, iface: 'eth0', addresses: ['203.0.113.10/24'], advskew: skew },
  { name: 'second', vhid: 21, iface: 'eth0', addresses: ['203.0.113.20/24'], advskew: skew + 10 },
];

function scenario(title: string, leave: (n1: Node) => Promise<void>): void {
  describe(`two groups in one subnet: ${title}`, () => {
    let lab: Lab;
    let n1: Node;
    const pair = new Pair('fault-sec');

    before(async () => {
      await pair.start(groups(0), groups(50), { first: 'MASTER', second: 'MASTER' });
      ({ lab, n1 } = pair);
      await waitFor(
        async () => (await n1.is('first', 'MASTER')) && (await n1.is('second', 'MASTER')),
        15000,
        'h1',
      );
      await waitFor(async () => (await holdersOf(lab, '203.0.113.20')).length === 1, 5000, 'addresses on h1');
    });

    after(() => pair.after());

    it('promote_secondaries is on for the managed interface', async () => {
      const v = await lab.exec(lab.host(1), 'cat', ['/proc/sys/net/ipv4/conf/eth0/promote_secondaries']);
      assert.equal(v.trim(), '1');
    });

    it('the second group’s address stays on its master', async () => {
      await leave(n1);
      await waitFor(
        async () => (await holdersOf(lab, '203.0.113.10')).join() === lab.host(2).ns,
        5000,
        'first on h2',
      );
      // Give a cascade time to show.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await n1.group('second')).state, 'MASTER');
      assert.deepEqual(await holdersOf(lab, '203.0.113.20'), [lab.host(1).ns]);
    });
  });
}

scenario('the first is demoted', async (n1) => {
  assert.equal((await n1.ctl('demote', 'first')).code, 0);
});

scenario('the first is removed on reload', async (n1) => {
  n1.write(groups(0).filter((g) => g.name === 'second'));
  assert.equal((await n1.ctl('reload')).code, 0);
});
