// The multi-group supervisor between two hosts: 100 groups each over two interfaces, then
// every kind of reload, checked against the addresses actually present on the hosts.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, Host, waitFor } from '../helpers/netns';
import { SupervisorProc, TestGroup, configYaml, writeByRename } from '../helpers/supervisor-proc';

const PER_IFACE = 50;
const SUBNET = ['192.0.2', '198.51.100'];

function groupsFor(hostIndex: number): TestGroup[] {
  const out: TestGroup[] = [];
  for (let s = 0; s < 2; s++) {
    for (let i = 0; i < PER_IFACE; i++) {
      // Host 1 is preferred for even groups, host 2 for odd ones.
      const preferred = i % 2 === (hostIndex === 1 ? 0 : 1);
      out.push({
        name: `g${s}-${i}`,
        vhid: i + 1,
        iface: `eth${s}`,
        addresses: [`${SUBNET[s]}.${101 + i}/24`],
        advskew: preferred ? 0 : 100,
      });
    }
  }
  return out;
}

const vip = (g: TestGroup) => g.addresses[0].split('/')[0];

describe('supervisor: 2 hosts × 100 groups over 2 interfaces', () => {
  let lab: Lab;
  let h1: Host;
  let h2: Host;
  let d1: SupervisorProc;
  let d2: SupervisorProc;
  let g1: TestGroup[];
  let g2: TestGroup[];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-sup-'));
  const f1 = path.join(dir, 'h1', 'ucarp.yaml');
  const f2 = path.join(dir, 'h2', 'ucarp.yaml');
  const yaml1 = () => configYaml(g1, { socket: path.join(dir, 'h1.sock') });
  const yaml2 = () => configYaml(g2, { socket: path.join(dir, 'h2.sock') });

  /** Who holds each address, from the hosts' interfaces. */
  async function holders(): Promise<Map<string, string[]>> {
    const m = new Map<string, string[]>();
    for (const h of [h1, h2]) {
      for (const iface of h.ifaces) {
        for (const a of await lab.addresses(h, iface)) m.set(a, [...(m.get(a) ?? []), h.ns]);
      }
    }
    return m;
  }

  async function reloaded(d: SupervisorProc, from: number, re: RegExp): Promise<string> {
    return d.waitLine(new RegExp(`reload \\(.*\\): .*${re.source}`), from);
  }

  before(async () => {
    lab = await Lab.create({ hosts: 2, segments: 2 });
    [h1, h2] = lab.hosts;
    fs.mkdirSync(path.dirname(f1));
    fs.mkdirSync(path.dirname(f2));
    g1 = groupsFor(1);
    g2 = groupsFor(2);
    fs.writeFileSync(f1, yaml1());
    fs.writeFileSync(f2, yaml2());
    d1 = new SupervisorProc(lab, h1, f1);
    d2 = new SupervisorProc(lab, h2, f2);
  });

  after(async () => {
    await lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('every group has exactly one master, the preferred host, holding its address', async () => {
    await waitFor(
      async () => {
        const h = await holders();
        return g1.every((g) => (h.get(vip(g)) ?? []).length === 1);
      },
      20000,
      'one holder per virtual address',
    );
    await new Promise((r) => setTimeout(r, 2000));
    const h = await holders();
    for (const g of g1) {
      const expected = g.advskew === 0 ? h1.ns : h2.ns;
      assert.deepEqual(h.get(vip(g)), [expected], `${g.name}`);
      assert.equal(d1.state(g.name), g.advskew === 0 ? 'MASTER' : 'BACKUP', g.name);
    }
  });

  test('reload adds a group: it starts and takes its address; nothing else moves', async () => {
    const from1 = d1.lines.length;
    g1.push({ name: 'added', vhid: 60, iface: 'eth0', addresses: ['192.0.2.160/24'] });
    fs.writeFileSync(f1, yaml1());
    d1.signal('SIGHUP');
    await reloaded(d1, from1, /added 1 \(added\)/);
    await waitFor(async () => (await holders()).get('192.0.2.160')?.[0] === h1.ns, 8000, 'added address');
    const others = d1.transitions(undefined, from1).filter((l) => !/(^|\s)added vhid/.test(l));
    assert.deepEqual(others, [], 'no other group changed state');
    assert.equal(d1.state('added'), 'MASTER');
  });

  test('reload removes a group: its master bows out and the peer takes over at once', async () => {
    const victim = g1.find((g) => g.name === 'g0-0')!;
    assert.equal(d1.state('g0-0'), 'MASTER');
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    g1 = g1.filter((g) => g !== victim);
    fs.writeFileSync(f1, yaml1());
    d1.signal('SIGHUP');
    const t0 = Date.now();
    await reloaded(d1, from1, /removed 1 \(g0-0\)/);
    await d2.waitLine(/g0-0 vhid 1 eth0: Switching to state: MASTER \(master-timing-out\)/, from2);
    // Generous: without the bow-out the peer would wait out its 3.4 s dead time.
    assert.ok(Date.now() - t0 < 3000, `peer took ${Date.now() - t0} ms`);
    await waitFor(
      async () => (await holders()).get(vip(victim))?.join() === h2.ns,
      5000,
      'address moved to h2',
    );
    assert.deepEqual(d2.transitions(undefined, from2).length, 1, 'only g0-0 changed on the peer');
  });

  test('reload changes advskew in place: no transition, the peer sees the new skew', async () => {
    const g = g1.find((x) => x.name === 'g0-2')!;
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    g.advskew = 50;
    fs.writeFileSync(f1, yaml1());
    d1.signal('SIGHUP');
    await reloaded(d1, from1, /updated 1 \(g0-2: advskew\)/);
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual(d1.transitions(undefined, from1), []);
    assert.deepEqual(d2.transitions(undefined, from2), []);
    assert.equal(d1.state('g0-2'), 'MASTER');
  });

  test('reload changes a password: only that group restarts', async () => {
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    // g0-4 is backup on h2: change it there first, then on its master h1.
    g2.find((x) => x.name === 'g0-4')!.password = 'n3w-pass';
    fs.writeFileSync(f2, yaml2());
    d2.signal('SIGHUP');
    await reloaded(d2, from2, /restarted 1 \(g0-4\)/);
    g1.find((x) => x.name === 'g0-4')!.password = 'n3w-pass';
    fs.writeFileSync(f1, yaml1());
    d1.signal('SIGHUP');
    await reloaded(d1, from1, /restarted 1 \(g0-4\)/);
    await new Promise((r) => setTimeout(r, 5000));
    const others = (d: SupervisorProc, from: number) =>
      d.transitions(undefined, from).filter((l) => !/\bg0-4 vhid/.test(l));
    assert.deepEqual(others(d1, from1), []);
    assert.deepEqual(others(d2, from2), []);
    const h = await holders();
    assert.equal(h.get('192.0.2.105')?.length, 1, 'g0-4 has exactly one master again');
  });

  test('an invalid file is rejected whole with line:column errors and nothing changes', async () => {
    const before = await holders();
    const from1 = d1.lines.length;
    const bad = yaml1().replace('vhid: 3\n', 'vhid: 300\n').replace('advskew: 100', 'advskw: 100');
    fs.writeFileSync(f1, bad);
    d1.signal('SIGHUP');
    await d1.waitLine(/reload \(.*\) rejected, running groups unchanged/, from1);
    await d1.waitLine(/ucarp\.yaml:\d+:\d+: groups\.g0-2\.vhid: must be <= 255/, from1);
    await d1.waitLine(/ucarp\.yaml:\d+:\d+: groups\.g0-1\.advskw: /, from1);
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual(d1.transitions(undefined, from1), []);
    assert.deepEqual(await holders(), before);
    fs.writeFileSync(f1, yaml1());
  });

  test('a file replaced by rename is picked up by the watcher', async () => {
    const from1 = d1.lines.length;
    g1.push({ name: 'renamed', vhid: 61, iface: 'eth1', addresses: ['198.51.100.161/24'] });
    writeByRename(f1, yaml1());
    await reloaded(d1, from1, /added 1 \(renamed\)/);
    await waitFor(
      async () => (await holders()).get('198.51.100.161')?.[0] === h1.ns,
      8000,
      'renamed group address',
    );
  });

  test('20 SIGHUPs in one second give one consistent result', async () => {
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    g1.find((x) => x.name === 'g1-3')!.advskew = 120;
    fs.writeFileSync(f1, yaml1());
    for (let i = 0; i < 20; i++) {
      d1.signal('SIGHUP');
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 2500));
    const reloads = d1.lines.slice(from1).filter((l) => /reload \(/.test(l));
    // Reloads are serialized (a burst arriving during one run collapses into one more run).
    assert.ok(reloads.length >= 1 && reloads.length <= 21, `${reloads.length} reload runs`);
    assert.equal(reloads.filter((l) => /updated 1 \(g1-3: advskew\)/.test(l)).length, 1, reloads.join('\n'));
    assert.ok(reloads.every((l) => /added 0, removed 0/.test(l) && !/rejected/.test(l)));
    assert.deepEqual(d1.transitions(undefined, from1), []);
    assert.deepEqual(d2.transitions(undefined, from2), []);
    assert.equal(d1.exited, false);
  });

  test('SIGTERM releases every address and the peer takes all groups over', async () => {
    d1.signal('SIGTERM');
    await d1.exit(20000);
    await waitFor(
      async () => {
        const h = await holders();
        return g2.every((g) => h.get(vip(g))?.join() === h2.ns);
      },
      8000,
      'all shared addresses on h2',
    );
    const left = [...(await lab.addresses(h1, 'eth0')), ...(await lab.addresses(h1, 'eth1'))];
    assert.deepEqual(left.sort(), ['192.0.2.1', '198.51.100.1']);
  });
});
