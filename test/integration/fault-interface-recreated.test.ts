// Fault: the master's interface is deleted and created again under the same name (a new
// ifindex). Sockets bound to the old index hear and send nothing; the daemon must leave
// MASTER when the interface goes (even with ignoreifstate), set everything up again on the
// new index, and elect normally — no restart, no reload.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, waitFor } from '../helpers/netns';
import type { TestGroup } from '../helpers/supervisor-proc';
import { Pair, type Node, createInterface, deleteInterface, holdersOf, ifindex } from '../helpers/fault';

const groups = (advskew: number, ignoreifstate: boolean): TestGroup[] => [
  { name: 'web', vhid: 10, iface: 'eth0', addresses: ['192.0.2.100/24'], advskew, extra: { ignoreifstate } },
  { name: 'db', vhid: 11, iface: 'eth0', addresses: ['192.0.2.101/24'], advskew, preempt: true },
];

for (const ignoreifstate of [false, true]) {
  describe(`interface re-created on the master → one holder per address (ignoreifstate ${ignoreifstate})`, () => {
    let lab: Lab;
    let n1: Node;
    let n2: Node;
    const pair = new Pair('fault-ifre');

    before(async () => {
      await pair.start(groups(0, ignoreifstate), groups(50, false), { web: 'MASTER', db: 'MASTER' });
      ({ lab, n1, n2 } = pair);
      await n1.waitAll({ web: 'MASTER', db: 'MASTER' }, 20_000);
      await n2.waitAll({ web: 'BACKUP', db: 'BACKUP' }, 5000);
    });

    after(() => pair.after());

    it('the peer takes over while the interface is gone; the master waits, visibly', async (t) => {
      const before = await ifindex(lab.host(1), 'eth0');
      const t0 = Date.now();
      await deleteInterface(lab, lab.host(1));
      await waitFor(async () => (await n1.group('web')).link === 'missing', 2000, 'h1 to see eth0 gone');
      // FAULT: it cannot serve without its interface, and waits for it (docs/protocol.md §9).
      assert.equal((await n1.group('web')).state, 'FAULT');
      assert.equal((await n1.group('db')).state, 'FAULT');
      assert.deepEqual((await n1.group('web')).faults, ['interface missing']);
      // h2 hears nothing from h1 any more: it takes over after its dead time.
      await waitFor(
        async () =>
          (await holdersOf(lab, '192.0.2.100')).join() === lab.host(2).ns &&
          (await holdersOf(lab, '192.0.2.101')).join() === lab.host(2).ns,
        6000,
        'h2 to hold both addresses',
      );
      t.diagnostic(`interface deleted → peer holds both addresses after ${Date.now() - t0} ms`);
      assert.ok(n1.proc.lines.some((l) => /web vhid 10 eth0: .*interface eth0 is gone/.test(l)));
      await createInterface(lab, lab.host(1));
      assert.notEqual(await ifindex(lab.host(1), 'eth0'), before);
    });

    it('on the new index the old master elects again: db preempts back, web stays on the peer', async (t) => {
      const t0 = Date.now();
      await waitFor(async () => (await n1.group('db')).state === 'MASTER', 8000, 'db back on h1 (preempt)');
      t.diagnostic(`interface re-created → preempting group back on h1 after ${Date.now() - t0} ms`);
      // web does not preempt: it hears h2 as master on the new socket and stays BACKUP.
      await new Promise((r) => setTimeout(r, 4000));
      assert.equal((await n1.group('web')).state, 'BACKUP');
      assert.equal((await n1.group('web')).link, 'up');
      assert.deepEqual(await holdersOf(lab, '192.0.2.100'), [lab.host(2).ns]);
      assert.deepEqual(await holdersOf(lab, '192.0.2.101'), [lab.host(1).ns]);
      assert.equal((await n2.group('db')).state, 'BACKUP');
      assert.ok((await n1.group('web')).received > 0, 'h1 hears advertisements on the new interface');
      assert.ok(!n1.proc.exited && !n2.proc.exited);
    });
  });
}
