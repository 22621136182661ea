// Unicast peers (FreeBSD carp's `peer`) for networks that drop multicast: advertisements go
// to the listed hosts, only theirs are accepted, and no multicast membership is taken.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor, type Lab } from '../helpers/netns';
import { preemptingGroup } from '../helpers/supervisor-proc';
import { Pair, holdersOf, run, type Node } from '../helpers/fault';

const UNI = '192.0.2.100';
const MULTI = '192.0.2.110';

const uni = (advskew: number, peer: string) =>
  preemptingGroup('uni', 10, `${UNI}/24`, advskew, { peers: `[${peer}]` });
const multi = (advskew: number) => preemptingGroup('multi', 11, `${MULTI}/24`, advskew);

/** Every IPv4 multicast frame dropped by the switch (a bridge-family nftables rule). */
async function dropMulticast(lab: Lab): Promise<void> {
  const nft = (...args: string[]) => run('ip', ['netns', 'exec', lab.sw, 'nft', ...args]);
  for (const cmd of [
    ['add', 'table', 'bridge', 'ucarp_nomc'],
    ['add', 'chain', 'bridge', 'ucarp_nomc', 'mcdrop', '{ type filter hook forward priority 0; }'],
    ['add', 'rule', 'bridge', 'ucarp_nomc', 'mcdrop', 'ip', 'daddr', '224.0.0.0/4', 'drop'],
  ]) {
    const r = await nft(...cmd);
    assert.equal(r.code, 0, r.stderr);
  }
}

describe('unicast peers on a segment that drops multicast', () => {
  const pair = new Pair('uni-nomc');
  let lab: Lab;
  let n1: Node;
  let n2: Node;

  before(async () => {
    await pair.start([uni(0, '192.0.2.2'), multi(0)], [uni(50, '192.0.2.1'), multi(50)], undefined);
    ({ lab, n1, n2 } = pair);
    await dropMulticast(lab);
  });
  after(() => pair.after());

  it('the segment really drops multicast: a multicast group ends with two masters', async () => {
    await n1.waitAll({ multi: 'MASTER' });
    await n2.waitAll({ multi: 'MASTER' });
  });

  it('unicast groups elect one master, and the backup hears it', async () => {
    await n1.waitAll({ uni: 'MASTER' });
    await n2.waitAll({ uni: 'BACKUP' });
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal((await n2.group('uni')).state, 'BACKUP', 'advertisements reach h2 without multicast');
    assert.ok((await n2.group('uni')).received >= 3);
    assert.deepEqual(await holdersOf(lab, UNI), [lab.host(1).ns]);
  });

  it('fail over when the master dies', async (t) => {
    const t0 = Date.now();
    n1.proc.signal('SIGKILL');
    await n2.waitState('uni', 'MASTER', 6000);
    t.diagnostic(`unicast: SIGKILL of the master → peer master after ${Date.now() - t0} ms`);
    await waitFor(async () => (await holdersOf(lab, UNI)).includes(lab.host(2).ns), 2000, 'VIP on h2');
  });
});

describe('unicast and multicast groups side by side on one interface', () => {
  const pair = new Pair('uni-mc');
  let lab: Lab;
  let n1: Node;
  let n2: Node;

  before(async () => {
    await pair.start([uni(0, '192.0.2.2'), multi(50)], [uni(50, '192.0.2.1'), multi(0)], undefined);
    ({ lab, n1, n2 } = pair);
  });
  after(() => pair.after());

  it('each elects its own master', async () => {
    await n1.waitAll({ uni: 'MASTER', multi: 'BACKUP' }, 20_000);
    await n2.waitAll({ uni: 'BACKUP', multi: 'MASTER' }, 20_000);
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual(await holdersOf(lab, UNI), [lab.host(1).ns]);
    assert.deepEqual(await holdersOf(lab, MULTI), [lab.host(2).ns]);
  });

  it('a host not in the peer list is refused (counted as peer)', async () => {
    // h2 sends its multicast group's advertisements; a third party sending to h1's address as
    // vhid 10 would be refused. Change h1's peer list to a host that does not exist: h2's
    // unicast advertisements must now be refused, and no transition happens on reload.
    n1.write([uni(0, '192.0.2.9'), multi(50)]);
    const r = await n1.ctl('reload');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /updated 1 \(uni: peers\)/);
    await new Promise((res) => setTimeout(res, 2500));
    assert.equal((await n1.group('uni')).state, 'MASTER');
    // h1 now advertises to nobody real: h2 times out, becomes master and advertises to h1,
    // which must refuse it as not one of its peers.
    await waitFor(async () => (await n1.group('uni')).rejects.peer > 0, 10_000, 'h2 refused as a peer');
  });
});
