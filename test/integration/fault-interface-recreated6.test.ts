// Fault, IPv6: the master's interface is deleted and created again under the same name. The
// IPv6 socket, its ff02::12 membership and the group's own source went with the old interface;
// on the new one they must all be set up again, or the old master hears nobody, takes the
// address back after its dead time and holds it beside the peer (docs/protocol.md §21).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor, type Lab } from '../helpers/netns';
import type { TestGroup } from '../helpers/supervisor-proc';
import { Pair, type Node, createInterface, deleteInterface } from '../helpers/fault';

const VIP6 = '2001:db8:1::30';
const web6 = (advskew: number): TestGroup => ({
  name: 'web6',
  vhid: 30,
  iface: 'eth0',
  addresses: [`${VIP6}/64`],
  advskew,
});

async function holders6(lab: Lab): Promise<string[]> {
  const out: string[] = [];
  for (const h of lab.hosts) {
    // A host whose eth0 is deleted holds nothing.
    const on = await lab.addresses6(h).catch(() => [] as string[]);
    if (on.includes(VIP6)) out.push(h.ns);
  }
  return out.sort();
}

describe('IPv6 group, interface re-created on the master → it hears the new master there', () => {
  let lab: Lab;
  let n1: Node;
  let n2: Node;
  const pair = new Pair('fault-ifre6');

  before(async () => {
    await pair.start([web6(0)], [web6(50)], { web6: 'MASTER' }, { ipv6: true });
    ({ lab, n1, n2 } = pair);
    await n2.waitAll({ web6: 'BACKUP' }, 5000);
  });

  after(() => pair.after());

  it('the peer takes over while the interface is gone', async () => {
    await deleteInterface(lab, lab.host(1));
    await waitFor(async () => (await n1.group('web6')).link === 'missing', 2000, 'h1 to see eth0 gone');
    await waitFor(
      async () => (await holders6(lab)).join() === lab.host(2).ns,
      6000,
      'h2 to hold the address',
    );
    await createInterface(lab, lab.host(1), 0, false);
  });

  it('on the new interface the old master stays BACKUP, hearing the peer: one holder', async () => {
    await waitFor(async () => (await n1.group('web6')).link === 'up', 5000, 'h1 to see eth0 up');
    const heard = (await n1.group('web6')).received;
    // Longer than the dead time (3 s): deaf, h1 would have become MASTER again by then.
    await new Promise((r) => setTimeout(r, 4500));
    const g = await n1.group('web6');
    assert.equal(g.state, 'BACKUP');
    assert.ok(g.received > heard, 'h1 hears advertisements on the new interface');
    assert.deepEqual(await holders6(lab), [lab.host(2).ns]);
    assert.equal((await n2.group('web6')).state, 'MASTER');
  });
});
