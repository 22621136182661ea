// Fault: the master is killed (SIGKILL), a group is removed from its file, and the daemon is
// started again. Every address the killed run added must go — including the removed group's,
// which no configuration names any more — and an address an operator added by hand must stay.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, ip, waitFor } from '../helpers/netns';
import type { TestGroup } from '../helpers/supervisor-proc';
import { Pair, type Node, holdersOf } from '../helpers/fault';

const groups = (skew: number): TestGroup[] => [
  { name: 'web', vhid: 10, iface: 'eth0', addresses: ['192.0.2.100/24'], advskew: skew },
  { name: 'gone', vhid: 11, iface: 'eth0', addresses: ['192.0.2.101/24'], advskew: skew },
  // h2 is the master of this one: h1 is its backup.
  {
    name: 'manual',
    vhid: 12,
    iface: 'eth0',
    addresses: ['192.0.2.102/24'],
    advskew: 100 - skew,
    preempt: true,
  },
];

describe('SIGKILL, a group removed from the file, restart → no stale address', () => {
  let lab: Lab;
  let n1: Node;
  const pair = new Pair('fault-stale');

  before(async () => {
    await pair.start(groups(0), groups(50), { web: 'MASTER', gone: 'MASTER' });
    ({ lab, n1 } = pair);
    await waitFor(async () => (await n1.is('web', 'MASTER')) && (await n1.is('gone', 'MASTER')), 15000, 'h1');
    await waitFor(async () => (await holdersOf(lab, '192.0.2.101')).length === 1, 5000, 'addresses on h1');
  });

  after(() => pair.after());

  it('after the restart only the new master holds each address; the hand-added one stays', async (t) => {
    // An operator's own address that happens to be a VIP of a group h1 is backup for.
    await n1.waitState('manual', 'BACKUP');
    await waitFor(async () => (await holdersOf(lab, '192.0.2.102')).length === 1, 5000, 'manual on h2');
    await ip('-n', lab.host(1).ns, 'addr', 'add', '192.0.2.102/24', 'dev', 'eth0');
    n1.proc.signal('SIGKILL');
    await n1.proc.exit();
    const t0 = Date.now();
    await waitFor(
      async () => (await holdersOf(lab, '192.0.2.100')).includes(lab.host(2).ns),
      6000,
      'h2 takes web over',
    );
    n1.write(groups(0).filter((g) => g.name !== 'gone'));
    n1.start();
    await waitFor(
      async () =>
        (await holdersOf(lab, '192.0.2.100')).join() === lab.host(2).ns &&
        (await holdersOf(lab, '192.0.2.101')).join() === lab.host(2).ns,
      10000,
      'one holder per address',
    );
    t.diagnostic(`SIGKILL → one holder per address after ${Date.now() - t0} ms (restart included)`);
    assert.deepEqual((await holdersOf(lab, '192.0.2.102')).sort(), [lab.host(1).ns, lab.host(2).ns].sort());
    await waitFor(async () => (await n1.group('manual')).conflicts.length === 1, 3000, 'the conflict shown');
    const manual = await n1.group('manual');
    assert.deepEqual(manual.conflicts, ['192.0.2.102']);
    assert.ok(manual.addressConflicts >= 1);
    assert.ok(
      n1.proc.lines.some((l) =>
        /removed 192\.0\.2\.101\/24 from eth0, left by an earlier run \(group gone\)/.test(l),
      ),
    );
    assert.ok(
      n1.proc.lines.some((l) =>
        /WARN.*manual vhid 12 eth0: 192\.0\.2\.102\/24 is on eth0 while BACKUP/.test(l),
      ),
    );
  });
});
