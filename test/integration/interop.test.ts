// Two nodes on one segment, in every pairing of our ucarp and Debian's ucarp 1.5.2.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, ip, waitFor } from '../helpers/netns';
import { CarpProc, Kind, carpArgs, masters } from '../helpers/carp-proc';

const labs: Lab[] = [];
after(async () => {
  for (const l of labs) await l.destroy();
});

async function lab(): Promise<Lab> {
  const l = await Lab.create({ hosts: 2 });
  labs.push(l);
  return l;
}

/** Exactly one master, and it stays the only one for a while. */
async function oneMaster(nodes: CarpProc[], timeoutMs = 12000): Promise<CarpProc> {
  await waitFor(
    () => masters(nodes).length === 1 && nodes.every((n) => n.state !== 'INIT'),
    timeoutMs,
    'one master',
  );
  await new Promise((r) => setTimeout(r, 2500));
  const m = masters(nodes);
  assert.equal(m.length, 1, `masters: ${m.map((x) => x.kind + '@' + x.host.ns).join(', ')}`);
  return m[0];
}

const pairs: [Kind, Kind][] = [
  ['ours', 'ucarp'],
  ['ucarp', 'ours'],
  ['ours', 'ours'],
];

for (const [first, second] of pairs) {
  test(`${first} master, ${second} backup: one master, SIGKILL fails over, the old master rejoins as backup`, async () => {
    const l = await lab();
    const [h1, h2] = l.hosts;
    const a = new CarpProc(l, h1, first, carpArgs(h1, { advskew: 0 }));
    await a.waitState('MASTER');
    const b = new CarpProc(l, h2, second, carpArgs(h2, { advskew: 50 }));
    await b.waitState('BACKUP');
    assert.equal(await oneMaster([a, b]), a);
    a.kill('SIGKILL');
    await b.waitState('MASTER', 6000);
    // The restarted node has the better skew but no preemption: it stays backup.
    const a2 = new CarpProc(l, h1, first, carpArgs(h1, { advskew: 0 }));
    await a2.waitState('BACKUP');
    assert.equal(await oneMaster([a2, b]), b);
    // Failover back the other way.
    b.kill('SIGKILL');
    await a2.waitState('MASTER', 6000);
    a2.kill();
  });

  test(`${first} backup with --preempt and a lower advskew takes over from ${second}`, async () => {
    const l = await lab();
    const [h1, h2] = l.hosts;
    const slow = new CarpProc(l, h2, second, carpArgs(h2, { advskew: 100 }));
    await slow.waitState('MASTER');
    const fast = new CarpProc(l, h1, first, carpArgs(h1, { advskew: 10, extra: ['-P'] }));
    await fast.waitState('MASTER', 8000);
    await slow.waitState('BACKUP', 4000);
    assert.equal(await oneMaster([fast, slow]), fast);
    fast.kill();
    slow.kill();
  });
}

for (const [first, second] of [
  ['ours', 'ucarp'],
  ['ucarp', 'ours'],
] as [Kind, Kind][]) {
  test(`equal timing, ${first} vs ${second}: the tie-break in ucarp byte order leaves exactly one master`, async () => {
    const l = await lab();
    const [h1, h2] = l.hosts;
    // 192.0.2.10 < 198.51.100.5 naturally, but read as little-endian s_addr (ucarp on x86)
    // 198.51.100.5 is the lower one, so it must win when both claim mastership.
    await ip('-n', h1.ns, 'addr', 'add', '192.0.2.10/24', 'dev', 'eth0');
    await ip('-n', h2.ns, 'addr', 'add', '198.51.100.5/24', 'dev', 'eth0');
    // Partition without losing carrier so that both become master...
    await l.isolate(h1, true);
    const a = new CarpProc(l, h1, first, carpArgs(h1, { srcip: '192.0.2.10' }));
    const b = new CarpProc(l, h2, second, carpArgs(h2, { srcip: '198.51.100.5' }));
    await a.waitState('MASTER');
    await b.waitState('MASTER');
    // ...then heal: each sees an equal interval from the other.
    await l.isolate(h1, false);
    const m = await oneMaster([a, b]);
    assert.equal(m, b, 'the node that is lower in ucarp byte order stays master');
    a.kill();
    b.kill();
  });

  test(`different passwords, ${first} vs ${second}: neither accepts the other`, async () => {
    const l = await lab();
    const [h1, h2] = l.hosts;
    const a = new CarpProc(l, h1, first, carpArgs(h1, { pass: 'alpha' }));
    await a.waitState('MASTER');
    const b = new CarpProc(l, h2, second, carpArgs(h2, { pass: 'bravo', advskew: 200 }));
    // b never hears a valid master, so it takes over too: two masters, by design.
    await b.waitState('MASTER', 8000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(a.state, 'MASTER');
    assert.equal(b.state, 'MASTER');
    const ours = first === 'ours' ? a : b;
    await ours.waitLine(/bad digest/);
    ours.child.kill('SIGUSR1');
    const line = await ours.waitLine(/rejects=\d+ \(digest=\d+\)/);
    assert.match(line, /received=0 /);
    a.kill();
    b.kill();
  });
}
