// Fault: a network partition and its healing. Three hosts; h1 is cut off the bridge (its port
// leaves the bridge, so its carrier stays up and only the traffic stops) and put back. Each
// host is the preferred master of a third of the groups.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, Host } from '../helpers/netns';
import { SupervisorProc, TestGroup } from '../helpers/supervisor-proc';
import {
  assertAlive,
  deadTimeMs,
  intervalMs,
  settled,
  singleHolders,
  transitions,
  vip,
  startDaemons,
} from '../helpers/fault';

const GROUPS = 6;
const HOSTS = 3;
/** Skew of the preferred host, the next one, and the last one of each group. */
const SKEWS = [0, 10, 20];
const MARGIN_MS = 500;

/** Rank (0 = preferred) of host `h` (1-based) in group `i`. */
const rank = (i: number, h: number) => (h - 1 - (i % HOSTS) + HOSTS) % HOSTS;

function groupsFor(h: number): TestGroup[] {
  return Array.from({ length: GROUPS }, (_, i) => ({
    name: `p${i}`,
    vhid: 21 + i,
    iface: 'eth0',
    addresses: [`192.0.2.${121 + i}/24`],
    advskew: SKEWS[rank(i, h)],
    // Preempt everywhere, so that the layout before the fault does not depend on which daemon
    // happened to start first.
    preempt: true,
  }));
}

describe('fault: partition (one host of three cut off) and heal', () => {
  let lab: Lab;
  let d: SupervisorProc[];
  const g = groupsFor(1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-fault-partition-'));
  const preferred = (i: number) => lab.hosts.find((h) => rank(i, h.index) === 0)!;
  /** The better of h2 and h3 in group i: master of that side during the partition. */
  const bestOther = (i: number): Host =>
    [lab.host(2), lab.host(3)].sort((a, b) => rank(i, a.index) - rank(i, b.index))[0];
  /**
   * The host that may briefly take over group i after the heal: the one that is neither
   * preferred nor h1, when it ranks above h1 (its interval is shorter than h1's).
   */
  const interloper = (i: number): number | undefined => {
    if (rank(i, 1) === 0) return undefined;
    const third = lab.hosts.find((h) => h.index !== 1 && rank(i, h.index) !== 0)!.index;
    return rank(i, third) < rank(i, 1) ? third : undefined;
  };
  const steady = () => singleHolders(new Map(g.map((x, i) => [vip(x), preferred(i)])));

  before(async () => {
    lab = await Lab.create({ hosts: HOSTS });
    d = startDaemons(lab, dir, groupsFor);
  });

  after(async () => {
    await lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('every group is on its preferred host only', async () => {
    await settled(lab, steady(), 1000, 20000, 'each address on its preferred host');
    assertAlive(...d);
  });

  test('during the partition each side has its own master per group', async (t) => {
    const h1 = lab.host(1);
    const from = d.map((x) => x.lines.length);
    // Majority side {h2, h3}: the better of the two is master of every group. The cut-off h1
    // hears nobody, so it is master of every group after its own dead time (docs/protocol.md
    // §9): each address is then on h1 and on exactly one host of the other side.
    const expected = new Map(g.map((x, i) => [vip(x), [h1.ns, bestOther(i).ns].sort()]));
    const t0 = Date.now();
    await lab.isolate(h1, true);
    const quiet = 2000;
    const r = await settled(
      lab,
      expected,
      quiet,
      10000 + quiet,
      'h1 plus one master of the other side per address',
    );
    const took = r.at - t0;
    // The slowest takeover is h1's in the groups where it ranks last (skew 20, the largest
    // dead time); the other side's takeovers are by a rank-1 host (skew 10).
    const bound = deadTimeMs(SKEWS[2]) + MARGIN_MS;
    t.diagnostic(
      `partition → h1 master of all, other side one master per group: ${took} ms (bound ${bound} ms), ` +
        `then held ${quiet} ms (${r.samples} kernel samples)`,
    );
    assert.ok(took <= bound, `took ${took} ms, bound ${bound} ms`);
    // Nobody may take over before its dead time, counted from the last advertisement it heard
    // before the cut (at most one interval of a preferred master earlier).
    assert.ok(took >= deadTimeMs(SKEWS[2]) - intervalMs(SKEWS[0]), `took ${took} ms: before the dead time`);

    // h1 took over exactly the groups it was not master of, by its dead time expiring.
    assert.deepEqual(
      transitions(d[0], from[0])
        .map((x) => `${x.group} ${x.state} ${x.reason}`)
        .sort(),
      g
        .filter((_, i) => rank(i, 1) !== 0)
        .map((x) => `${x.name} MASTER master-down`)
        .sort(),
    );
    // On the other side only h1's groups changed hands, once each, to the better of the two.
    const otherSide = [1, 2].flatMap((k) => transitions(d[k], from[k]).map((x) => ({ ...x, host: k + 1 })));
    assert.deepEqual(
      otherSide.map((x) => `${x.group} h${x.host} ${x.state} ${x.reason}`).sort(),
      g
        .flatMap((x, i) => (rank(i, 1) === 0 ? [`${x.name} h${bestOther(i).index} MASTER master-down`] : []))
        .sort(),
    );
    assertAlive(...d);
  });

  test('after heal, one holder per address within one or two intervals of the better master', async (t) => {
    const from = d.map((x) => x.lines.length);
    const t0 = Date.now();
    await lab.isolate(lab.host(1), false);
    // Held longer than any dead time: a node that missed the other side would take over again.
    const quiet = deadTimeMs(SKEWS[2]) + 1000;
    const r = await settled(lab, steady(), quiet, 10000 + quiet, 'each address on its preferred host only');
    t.diagnostic(
      `heal → one holder per address (all groups): ${r.at - t0} ms, ` +
        `then held ${quiet} ms (${r.samples} kernel samples)`,
    );

    // Two masters per group: the worse one yields at the first advertisement of the better
    // one (docs/protocol.md §9), at most one interval of a preferred host (skew 0) away. Where
    // the third host ranks between them, it preempts the yielding master's last advertisement
    // (a master sends one more as it yields, and a backup with preempt takes over from any
    // longer interval, §9), then yields itself at the preferred master's next one: at most
    // two intervals.
    const slow = g.filter((_, i) => interloper(i) !== undefined).map((x) => x.name);
    const byClass = new Map<number, number>();
    for (const [i, x] of g.entries()) {
      const took = r.perAddress.get(vip(x))! - t0;
      const intervals = interloper(i) === undefined ? 1 : 2;
      const bound = intervals * intervalMs(SKEWS[0]) + MARGIN_MS;
      assert.ok(took <= bound, `${x.name}: took ${took} ms, bound ${bound} ms`);
      byClass.set(intervals, Math.max(byClass.get(intervals) ?? 0, took));
    }
    t.diagnostic(
      `heal → one holder: worst ${byClass.get(1)} ms where two masters meet ` +
        `(bound ${intervalMs(SKEWS[0]) + MARGIN_MS} ms); worst ${byClass.get(2)} ms where a third host ` +
        `preempts in between (${slow.join(' ')}; bound ${2 * intervalMs(SKEWS[0]) + MARGIN_MS} ms)`,
    );

    // Allowed per group: the worse of the two masters steps down (better-master), and the
    // interloper described above may take over and step down once. The preferred master
    // itself never moves; nothing else is allowed.
    const all = d.flatMap((x, k) => transitions(x, from[k]).map((tr) => ({ ...tr, host: k + 1 })));
    for (const [i, x] of g.entries()) {
      const mine = all.filter((tr) => tr.group === x.name);
      const shown = mine.map((tr) => `h${tr.host} ${tr.state} ${tr.reason} +${tr.at - t0}`).join(', ');
      assert.ok(
        mine.every((tr) => rank(i, tr.host) !== 0),
        `${x.name}: the preferred master moved: ${shown}`,
      );
      const worse = rank(i, 1) === 0 ? bestOther(i).index : 1;
      const allowed = [`h${worse} BACKUP better-master`];
      const third = interloper(i);
      if (third !== undefined) allowed.push(`h${third} MASTER preempt`, `h${third} BACKUP better-master`);
      for (const tr of mine) {
        const what = `h${tr.host} ${tr.state} ${tr.reason}`;
        assert.ok(allowed.includes(what), `${x.name}: ${what} not allowed (all: ${shown})`);
      }
      assert.ok(shown.includes(allowed[0]), `${x.name}: the worse master did not step down: ${shown}`);
      assert.ok(mine.length <= allowed.length, `${x.name}: ${shown}`);
    }
    t.diagnostic(
      `transitions after heal, all hosts: ${all.length} for ${GROUPS} groups: ` +
        all.map((x) => `${x.group} h${x.host} ${x.state} ${x.reason} +${x.at - t0}`).join(', '),
    );
    assertAlive(...d);
  });
});
