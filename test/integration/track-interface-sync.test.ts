// An interface tracker, and a sync group across two interfaces. The master loses the carrier
// of eth1: the group on eth1 goes to FAULT (nothing can cross a dead link, so its peer waits
// its dead time), and the group on eth0 — tracking eth1, or held by its sync group — bows
// out at once, so the peer holds it within an advertisement interval. When the carrier comes
// back, both return together (preempt).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor, type Lab } from '../helpers/netns';
import type { TestGroup } from '../helpers/supervisor-proc';
import { Pair, holdersOf, type Node } from '../helpers/fault';

const WEB = '192.0.2.100';
const DB = '198.51.100.100';
const stamp = (line: string) => Date.parse(line.slice(0, 24));

describe('interface tracker: uplink down on the master → FAULT on the group that tracks it', () => {
  const pair = new Pair('track-if');
  let lab: Lab;
  let n1: Node;
  let n2: Node;
  const groups = (advskew: number): TestGroup[] => [
    {
      name: 'web',
      vhid: 10,
      iface: 'eth0',
      addresses: [`${WEB}/24`],
      advskew,
      preempt: true,
      extra: { track: '[uplink]' },
    },
  ];
  const top = 'trackers:\n  uplink:\n    interface: eth1';

  before(async () => {
    await pair.start(groups(0), groups(50), { web: 'MASTER' }, { top1: top, top2: top, segments: 2 });
    ({ lab, n1, n2 } = pair);
    await n2.waitAll({ web: 'BACKUP' });
  });
  after(() => pair.after());

  it('the peer holds the address at once; back with the carrier', async (t) => {
    const from2 = n2.proc.lines.length;
    const t0 = Date.now();
    await lab.setSwitchPort(lab.host(1), false, 1);
    await n2.proc.waitLine(/web vhid 10 eth0: Switching to state: MASTER/, from2, 3000);
    t.diagnostic(`uplink carrier lost on h1 → h2 master after ${Date.now() - t0} ms`);
    assert.deepEqual((await n1.group('web')).faults, ['uplink']);
    await waitFor(async () => (await holdersOf(lab, WEB)).join() === lab.host(2).ns, 2000, 'web on h2');
    await lab.setSwitchPort(lab.host(1), true, 1);
    await n1.waitState('web', 'MASTER', 5000);
    await waitFor(async () => (await holdersOf(lab, WEB)).join() === lab.host(1).ns, 2000, 'web back on h1');
  });
});

describe('sync group over two interfaces: carrier lost on one → both groups move, and come back together', () => {
  const pair = new Pair('track-sync');
  let lab: Lab;
  let n1: Node;
  let n2: Node;
  const groups = (advskew: number): TestGroup[] => [
    {
      name: 'web',
      vhid: 10,
      iface: 'eth0',
      addresses: [`${WEB}/24`],
      advskew,
      preempt: true,
      extra: { sync_group: 'edge' },
    },
    {
      name: 'db',
      vhid: 20,
      iface: 'eth1',
      addresses: [`${DB}/24`],
      advskew,
      preempt: true,
      extra: { sync_group: 'edge' },
    },
  ];

  before(async () => {
    await pair.start(groups(0), groups(50), { web: 'MASTER', db: 'MASTER' }, { segments: 2 });
    ({ lab, n1, n2 } = pair);
    await n2.waitAll({ web: 'BACKUP', db: 'BACKUP' });
  });
  after(() => pair.after());

  it('web (live link) moves within an interval by bow-out; db (dead link) after the dead time', async (t) => {
    const from1 = n1.proc.lines.length;
    const from2 = n2.proc.lines.length;
    await lab.setSwitchPort(lab.host(1), false, 1);
    const dbFault = await n1.proc.waitLine(
      /db vhid 20 eth1: Switching to state: FAULT \(link-down\)/,
      from1,
      3000,
    );
    await n1.proc.waitLine(/web vhid 10 eth0: Switching to state: FAULT \(fault\)/, from1, 3000);
    const webMaster = await n2.proc.waitLine(/web vhid 10 eth0: Switching to state: MASTER/, from2, 3000);
    const dbMaster = await n2.proc.waitLine(/db vhid 20 eth1: Switching to state: MASTER/, from2, 6000);
    const webMs = stamp(webMaster) - stamp(dbFault);
    const dbMs = stamp(dbMaster) - stamp(dbFault);
    t.diagnostic(
      `carrier lost: web on h2 after ${webMs} ms (bow-out), db on h2 after ${dbMs} ms (dead time)`,
    );
    assert.ok(webMs < 1000, `web took ${webMs} ms`);
    assert.ok(dbMs > 2000, `db moved after ${dbMs} ms: no bow-out can cross a dead link`);
    assert.deepEqual((await n1.group('web')).faults, ['sync group edge']);
    await waitFor(
      async () =>
        (await holdersOf(lab, WEB)).join() === lab.host(2).ns &&
        (await holdersOf(lab, DB)).join() === lab.host(2).ns,
      3000,
      'both on h2',
    );
  });

  it('the carrier returns → both leave FAULT together and preempt back together', async (t) => {
    const from1 = n1.proc.lines.length;
    await lab.setSwitchPort(lab.host(1), true, 1);
    const web = await n1.proc.waitLine(/web vhid 10 eth0: Switching to state: MASTER/, from1, 5000);
    const db = await n1.proc.waitLine(/db vhid 20 eth1: Switching to state: MASTER/, from1, 5000);
    const apart = Math.abs(stamp(web) - stamp(db));
    t.diagnostic(`web and db back on h1 ${apart} ms apart`);
    assert.ok(apart <= 1100, `${apart} ms apart`);
    await waitFor(
      async () =>
        (await holdersOf(lab, WEB)).join() === lab.host(1).ns &&
        (await holdersOf(lab, DB)).join() === lab.host(1).ns,
      3000,
      'both back on h1',
    );
  });
});
