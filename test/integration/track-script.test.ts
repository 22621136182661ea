// A virtual address that follows the service: a script tracker failing on the master puts it
// in FAULT, it bows out, and the peer holds the address at once; when the check passes again
// the group returns through BACKUP and preempts back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor, type Lab } from '../helpers/netns';
import type { TestGroup } from '../helpers/supervisor-proc';
import { Pair, holdersOf, type Node } from '../helpers/fault';

const VIP = '192.0.2.100';
const groups = (advskew: number): TestGroup[] => [
  {
    name: 'web',
    vhid: 10,
    iface: 'eth0',
    addresses: [`${VIP}/24`],
    advskew,
    preempt: true,
    extra: { track: '[service]' },
  },
];

/** The tracker passes while `file` exists: the test "stops the service" by removing it. */
const trackers = (file: string) =>
  [
    'trackers:',
    '  service:',
    `    script: [/usr/bin/test, -e, ${file}]`,
    '    interval: 0.2',
    '    fall: 1',
    '    rise: 2',
  ].join('\n');

/** Milliseconds of the ISO timestamp a log line starts with. */
function stamp(line: string): number {
  return Date.parse(line.slice(0, 24));
}

describe('script tracker: service down on the master → FAULT, the peer takes over at once', () => {
  const pair = new Pair('track-script');
  let lab: Lab;
  let n1: Node;
  let n2: Node;
  let ok1: string;

  before(async () => {
    ok1 = path.join(pair.root, 'service-up-h1');
    const ok2 = path.join(pair.root, 'service-up-h2');
    fs.writeFileSync(ok1, '');
    fs.writeFileSync(ok2, '');
    await pair.start(groups(0), groups(50), { web: 'MASTER' }, { top1: trackers(ok1), top2: trackers(ok2) });
    ({ lab, n1, n2 } = pair);
    await n2.waitAll({ web: 'BACKUP' });
    await waitFor(async () => (await holdersOf(lab, VIP)).join() === lab.host(1).ns, 5000, 'VIP on h1');
  });

  after(() => pair.after());

  it('the tracker is up in status', async () => {
    const st = await n1.status();
    assert.deepEqual(
      st.trackers.map((t) => [t.name, t.kind, t.failed]),
      [['service', 'script', false]],
    );
  });

  it('failure counted → bow-out → the peer master within 100 ms; the address moves', async (t) => {
    const from1 = n1.proc.lines.length;
    const from2 = n2.proc.lines.length;
    fs.rmSync(ok1);
    const fault = await n1.proc.waitLine(
      /web vhid 10 eth0: Switching to state: FAULT \(fault\)/,
      from1,
      5000,
    );
    const master = await n2.proc.waitLine(/web vhid 10 eth0: Switching to state: MASTER/, from2, 5000);
    const ms = stamp(master) - stamp(fault);
    t.diagnostic(`tracker failure counted on h1 → h2 MASTER after ${ms} ms`);
    assert.ok(ms >= 0 && ms < 100, `${ms} ms`);
    await waitFor(async () => (await holdersOf(lab, VIP)).join() === lab.host(2).ns, 2000, 'VIP on h2 only');
    const g = await n1.group('web');
    assert.equal(g.state, 'FAULT');
    assert.deepEqual(g.faults, ['service']);
    assert.equal((await n1.status()).trackers[0].failed, true);
  });

  it('a FAULT group never takes over, whatever it hears', async () => {
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await n1.group('web')).state, 'FAULT');
    assert.deepEqual(await holdersOf(lab, VIP), [lab.host(2).ns]);
  });

  it('the service back → BACKUP, then preempts back (rise 2)', async (t) => {
    const from = n1.proc.lines.length;
    const t0 = Date.now();
    fs.writeFileSync(ok1, '');
    await n1.proc.waitLine(/web vhid 10 eth0: Switching to state: BACKUP \(fault-cleared\)/, from, 5000);
    await n1.waitState('web', 'MASTER', 5000);
    t.diagnostic(`service back → h1 master again after ${Date.now() - t0} ms`);
    await waitFor(async () => (await holdersOf(lab, VIP)).join() === lab.host(1).ns, 2000, 'VIP back on h1');
    assert.equal((await n2.group('web')).state, 'BACKUP');
  });

  it('a reload that changes the tracker restarts only it, with no transition', async () => {
    const before = await n1.group('web');
    n1.top = trackers(ok1).replace('interval: 0.2', 'interval: 0.3');
    n1.write();
    const r = await n1.ctl('reload');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /unchanged 1; trackers: restarted 1 \(service\)/);
    await new Promise((res) => setTimeout(res, 1500));
    const after = await n1.group('web');
    assert.equal(after.state, 'MASTER');
    assert.equal(after.transitions, before.transitions);
  });
});
