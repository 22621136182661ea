// CARP over IPv6 (docs/protocol.md §21) between two of our daemons in namespaces: who holds
// each address is read from every host's kernel (`ip -6 addr`), the advertisements go to
// ff02::12 from the link-local address with hop limit 255, a takeover is announced with
// unsolicited neighbour advertisements, and an IPv4 group on the same interface runs alongside.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor, ip, type Lab, type Host } from '../helpers/netns';
import { preemptingGroup } from '../helpers/supervisor-proc';
import { Pair, holdersOf, run, type Node } from '../helpers/fault';
import { ROOT } from '../helpers/carp-proc';
import { encodeAdvertisement, passwordKey, authPrefix6 } from '../../src/protocol/carp';
import { ipv6ToBytes } from '../../src/net/ipv6';

const VIP6 = '2001:db8:1::10';
const VIP6B = '2001:db8:1::20';
const VIP4 = '192.0.2.100';

const web6 = (advskew: number) => preemptingGroup('web6', 20, `${VIP6}/64`, advskew);
const web4 = (advskew: number) => preemptingGroup('web4', 20, `${VIP4}/24`, advskew);
const web6b = (advskew: number) => preemptingGroup('web6b', 21, `${VIP6B}/64`, advskew);

/** The namespaces whose kernel has `address` on any interface (IPv6). */
async function holders6(lab: Lab, address: string): Promise<string[]> {
  const out: string[] = [];
  for (const h of lab.hosts) if ((await lab.addresses6(h)).includes(address)) out.push(h.ns);
  return out.sort();
}

async function linkLocal(lab: Lab, h: Host): Promise<string> {
  const ll = (await lab.addresses6(h)).find((a) => a.startsWith('fe80:'));
  assert.ok(ll, `a link-local address on ${h.ns}`);
  return ll;
}

/** Starts tcpdump in a host; resolves with what it printed once `count` packets matched. */
function capture(lab: Lab, h: Host, filter: string, count: number): Promise<string> {
  const child = lab.spawn(h, 'tcpdump', ['-l', '-n', '-vv', '-i', 'eth0', '-c', String(count), filter]);
  let text = '';
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  return new Promise((resolve) => child.on('exit', () => resolve(text)));
}

describe('CARP over IPv6 between two of our daemons, with an IPv4 group on the same interface', () => {
  const pair = new Pair('carp6');
  let lab: Lab;
  let n1: Node;
  let n2: Node;

  // The upscript gets the IPv6 address as its argument, as ucarp's scripts get the IPv4 one.
  const upLog = path.join(pair.root, 'up.log');
  const upscript = path.join(pair.root, 'up.sh');
  fs.writeFileSync(upscript, `#!/bin/sh\necho "$@" >> ${upLog}\n`, { mode: 0o755 });

  before(async () => {
    // Preempt and a head start for h1: start-up lag under load must not decide the master.
    await pair.start(
      [{ ...web6(0), extra: { upscript } }, web4(0)],
      [web6(50), web4(50)],
      { web6: 'MASTER', web4: 'MASTER' },
      { ipv6: true },
    );
    ({ lab, n1, n2 } = pair);
  });
  after(() => pair.after());

  it('elects one master per group; the IPv6 VIP is on h1 only, added without DAD', async () => {
    await n1.waitAll({ web6: 'MASTER', web4: 'MASTER' });
    await n2.waitAll({ web6: 'BACKUP', web4: 'BACKUP' });
    await waitFor(async () => (await n2.group('web6')).received >= 3, 6000, 'h2 hears h1 over IPv6');
    assert.equal((await n2.group('web6')).state, 'BACKUP');
    assert.deepEqual(await holders6(lab, VIP6), [lab.host(1).ns]);
    assert.deepEqual(await holdersOf(lab, VIP4), [lab.host(1).ns]);
    const info = JSON.parse(await ip('-n', lab.host(1).ns, '-j', '-6', 'addr', 'show', 'dev', 'eth0')) as {
      addr_info: { local: string; nodad?: boolean; tentative?: boolean }[];
    }[];
    const vip = info[0].addr_info.find((a) => a.local === VIP6);
    assert.equal(vip?.nodad, true, 'added with IFA_F_NODAD');
    assert.notEqual(vip?.tentative, true);
    // The backup knows the master by its link-local address: the IPv6 source of CARP.
    assert.equal((await n2.group('web6')).master?.address, await linkLocal(lab, lab.host(1)));
    assert.equal((await n1.group('web6')).srcip, await linkLocal(lab, lab.host(1)));
    await waitFor(async () => fs.existsSync(upLog), 3000, 'the upscript ran');
    assert.equal(fs.readFileSync(upLog, 'utf8'), `eth0 ${VIP6}\n`);
  });

  it('advertisements go to ff02::12 with hop limit 255, next header 112, 36 bytes', async () => {
    const text = await capture(lab, lab.host(2), 'ip6 proto 112', 1);
    assert.match(text, /hlim 255/);
    assert.match(text, /next-header unknown \(112\)|VRRP|CARP|proto 112/i);
    assert.match(text, /> ff02::12/);
    assert.match(text, /payload length: 36/);
  });

  it('a packet with hop limit 64 is rejected and counted as ttl', async () => {
    const key = passwordKey('s3cret');
    const prefix = authPrefix6(20, [ipv6ToBytes(VIP6)]);
    const adv = encodeAdvertisement({ vhid: 20, advbase: 1, advskew: 0, counter: 1n }, key, prefix);
    const before = (await n1.group('web6')).rejects.ttl;
    const r = await run('ip', [
      'netns',
      'exec',
      lab.host(2).ns,
      process.execPath,
      path.join(ROOT, 'dist/test/fixtures/inject6.js'),
      'eth0',
      '64',
      adv.toString('hex'),
      adv.toString('hex'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => (await n1.group('web6')).rejects.ttl >= before + 2, 3000, 'ttl rejects on h1');
    assert.equal((await n1.group('web6')).state, 'MASTER');
  });

  it('an IPv6 VIP removed by hand from the master is restored', async () => {
    await ip('-n', lab.host(1).ns, 'addr', 'del', `${VIP6}/64`, 'dev', 'eth0');
    await waitFor(async () => (await holders6(lab, VIP6)).length === 1, 3000, 'VIP6 restored');
    assert.deepEqual(await holders6(lab, VIP6), [lab.host(1).ns]);
    assert.equal((await n1.group('web6')).addressRestores, 1);
  });

  it('reload adds an IPv6 group', async () => {
    n1.write([web6(0), web4(0), web6b(0)]);
    n2.write([web6(50), web4(50), web6b(50)]);
    n1.proc.signal('SIGHUP');
    await n1.waitAll({ web6b: 'MASTER' });
    n2.proc.signal('SIGHUP');
    await n2.waitAll({ web6b: 'BACKUP' });
    await waitFor(async () => (await holders6(lab, VIP6B)).length === 1, 3000, 'VIP6B on one host');
    assert.deepEqual(await holders6(lab, VIP6B), [lab.host(1).ns]);
    assert.equal((await n1.group('web6')).state, 'MASTER', 'the running group was not disturbed');
  });

  it('SIGKILL of the master: h2 takes over within its dead time and announces it with NAs', async (t) => {
    // h2's dead time: advbase 1 × deadratio 3 + advskew 50/256 s = 3.2 s.
    const na = capture(
      lab,
      lab.host(1),
      `icmp6 and ip6[40] == 136 and ip6 src ${await linkLocal(lab, lab.host(2))}`,
      2,
    );
    const t0 = Date.now();
    n1.proc.signal('SIGKILL');
    await n2.waitState('web6', 'MASTER', 6000);
    const took = Date.now() - t0;
    t.diagnostic(`IPv6: SIGKILL of the master → peer master after ${took} ms`);
    assert.ok(took < 3200 + 1000, `takeover after ${took} ms`);
    await waitFor(async () => (await holders6(lab, VIP6)).includes(lab.host(2).ns), 2000, 'VIP6 on h2');
    const text = await na;
    assert.match(text, /neighbor advertisement, length 32, tgt is 2001:db8:1::10/);
    assert.match(text, /Flags \[override\]/);
    assert.match(text, /hlim 255/);
    assert.match(text, /> ff02::1:/);
    const mac = JSON.parse(await ip('-n', lab.host(2).ns, '-j', 'link', 'show', 'dev', 'eth0')) as {
      address: string;
    }[];
    assert.match(
      text,
      new RegExp(`destination link-address option \\(2\\), length 8 \\(1\\): ${mac[0].address}`),
    );
  });

  it('h1 comes back, preempts, and a graceful stop hands over at once (bow-out)', async (t) => {
    // The killed daemon left VIP6 behind: the restarted one removes it from its record first.
    n1.start();
    await n1.waitAll({ web6: 'MASTER', web4: 'MASTER' });
    await n2.waitAll({ web6: 'BACKUP' });
    await waitFor(
      async () => (await holders6(lab, VIP6)).join() === lab.host(1).ns,
      3000,
      'VIP6 back on h1 only',
    );
    const t0 = Date.now();
    n1.proc.signal('SIGTERM');
    await n2.waitState('web6', 'MASTER', 3000);
    const took = Date.now() - t0;
    t.diagnostic(`IPv6: SIGTERM of the master → peer master after ${took} ms`);
    assert.ok(took < 1500, `bow-out takeover after ${took} ms (the dead time is 3.2 s)`);
    await waitFor(async () => (await holders6(lab, VIP6)).join() === lab.host(2).ns, 3000, 'VIP6 on h2 only');
    await waitFor(
      async () => (await holdersOf(lab, VIP4)).join() === lab.host(2).ns,
      3000,
      'VIP4 on h2 only',
    );
  });
});

describe('CARP over IPv6 with unicast peers', () => {
  const pair = new Pair('carp6-uni');
  const uni = (self: string, peer: string, advskew: number) =>
    preemptingGroup('uni6', 30, '2001:db8:1::30/64', advskew, { srcip: self, peers: `[${peer}]` });

  before(() =>
    pair.start(
      [uni('2001:db8:1::1', '2001:db8:1::2', 0)],
      [uni('2001:db8:1::2', '2001:db8:1::1', 50)],
      {
        uni6: 'MASTER',
      },
      { ipv6: true },
    ),
  );
  after(() => pair.after());

  it('advertisements go to the peer from our global address, and the backup hears them', async () => {
    const { lab, n1, n2 } = pair;
    await n2.waitAll({ uni6: 'BACKUP' });
    const text = await capture(lab, lab.host(2), 'ip6 proto 112', 1);
    assert.match(text, /2001:db8:1::1 > 2001:db8:1::2: /);
    await waitFor(async () => (await n2.group('uni6')).received >= 3, 6000, 'h2 hears h1 by unicast');
    assert.equal((await n2.group('uni6')).master?.address, '2001:db8:1::1');
    assert.equal((await n1.group('uni6')).state, 'MASTER');
    assert.deepEqual(await holders6(lab, '2001:db8:1::30'), [lab.host(1).ns]);
  });
});
