// Fault: the master's cable is pulled (its switch-side port goes down, so its interface loses
// carrier) and plugged back in. Half the groups preempt on the old master, half do not.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab, Host } from '../helpers/netns';
import { SupervisorProc, configYaml } from '../helpers/supervisor-proc';
import {
  MARGIN_MS,
  preemptSplit,
  assertAlive,
  deadTimeMs,
  intervalMs,
  settled,
  singleHolders,
  transitions,
  vip,
} from '../helpers/fault';

const SKEW_H1 = 0;
const SKEW_H2 = 20;
const { groupsFor, preempts } = preemptSplit({
  count: 8,
  prefix: 'c',
  firstVhid: 11,
  firstOctet: 101,
  skew1: SKEW_H1,
  skew2: SKEW_H2,
});

describe('fault: carrier loss on the master, and its return', () => {
  let lab: Lab;
  let h1: Host;
  let h2: Host;
  let d1: SupervisorProc;
  let d2: SupervisorProc;
  const g = groupsFor(1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-fault-carrier-'));
  const allOn = (h: Host) => singleHolders(new Map(g.map((x) => [vip(x), h])));

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    [h1, h2] = lab.hosts;
    for (const n of [1, 2] as const) {
      const socket = path.join(dir, `h${n}.sock`);
      fs.writeFileSync(path.join(dir, `h${n}.yaml`), configYaml(groupsFor(n), { socket }));
    }
    // h1 starts first so that its dead time runs out first and it is master of every group
    // even where it does not preempt.
    d1 = new SupervisorProc(lab, h1, path.join(dir, 'h1.yaml'));
    await d1.waitLine(/started \d+ group/);
    d2 = new SupervisorProc(lab, h2, path.join(dir, 'h2.yaml'));
    await d2.waitLine(/started \d+ group/);
  });

  after(async () => {
    await lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('h1 is master of every group and the only holder of every address', async () => {
    await settled(lab, allOn(h1), 1000, 15000, 'every address on h1 only');
    for (const x of g) assert.equal(d2.state(x.name), 'BACKUP', x.name);
    assertAlive(d1, d2);
  });

  test('carrier loss: h1 releases at once, h2 holds every address within its dead time', async (t) => {
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    const t0 = Date.now();
    await lab.setSwitchPort(h1, false);
    const dead = deadTimeMs(SKEW_H2);
    // Held well past h1's own dead time: without carrier h1 hears nothing, and a backup
    // without carrier must not run its master-down timer (docs/protocol.md §9).
    const quiet = deadTimeMs(SKEW_H1) + 500;
    const r = await settled(lab, allOn(h2), quiet, dead + 3000 + quiet, 'every address on h2 only');
    const took = r.at - t0;
    t.diagnostic(
      `carrier down → one holder (h2) per address: ${took} ms (h2 dead time ${dead} ms), ` +
        `then held ${quiet} ms (${r.samples} kernel samples)`,
    );
    // h2's timer started at the last advertisement it heard, at most one h1 interval before
    // the cut: taking over earlier than that would be a premature takeover.
    assert.ok(took <= dead + MARGIN_MS, `took ${took} ms, bound ${dead + MARGIN_MS} ms`);
    assert.ok(took >= dead - intervalMs(SKEW_H1), `took ${took} ms: before the dead time`);

    const down = transitions(d1, from1);
    assert.deepEqual(
      down.map((x) => `${x.group} ${x.state} ${x.reason}`).sort(),
      g.map((x) => `${x.name} FAULT link-down`).sort(),
      'h1 left MASTER for every group because of the carrier',
    );
    const released = Math.max(...down.map((x) => x.at)) - t0;
    t.diagnostic(`carrier down → h1 logged FAULT (link-down) for all groups: ${released} ms`);
    assert.deepEqual(
      transitions(d2, from2)
        .map((x) => `${x.group} ${x.state} ${x.reason}`)
        .sort(),
      g.map((x) => `${x.name} MASTER master-down`).sort(),
    );
    assertAlive(d1, d2);
  });

  test('carrier returns: preempting groups go back to h1 at the next advertisement of h2, others stay', async (t) => {
    const from1 = d1.lines.length;
    const from2 = d2.lines.length;
    const expected = singleHolders(new Map(g.map((x, i) => [vip(x), preempts(i) ? h1 : h2])));
    const t0 = Date.now();
    await lab.setSwitchPort(h1, true);
    // Held past h1's fresh dead time: a restarted master-down timer that did not hear h2
    // would show as a late takeover.
    const quiet = deadTimeMs(SKEW_H1) + 1000;
    const r = await settled(lab, expected, quiet, 10000 + quiet, 'preempting groups on h1, the others on h2');
    const took = r.at - t0;
    // h1 preempts on the first advertisement it hears from h2 (docs/protocol.md §9), which
    // comes within one of h2's intervals after the carrier is back.
    const bound = intervalMs(SKEW_H2) + MARGIN_MS;
    t.diagnostic(
      `carrier up → one holder per address (preempt on h1, rest on h2): ${took} ms (bound ${bound} ms), ` +
        `then held ${quiet} ms (${r.samples} kernel samples)`,
    );
    assert.ok(took <= bound, `took ${took} ms, bound ${bound} ms`);

    const t1 = transitions(d1, from1);
    // Every group leaves FAULT for BACKUP when the carrier is back; then only the preempting
    // ones take over.
    assert.deepEqual(
      t1.map((x) => `${x.group} ${x.state} ${x.reason}`).sort(),
      [
        ...g.map((x) => `${x.name} BACKUP link-up`),
        ...g.filter((_, i) => preempts(i)).map((x) => `${x.name} MASTER preempt`),
      ].sort(),
      'h1 took back only the preempting groups',
    );
    assert.deepEqual(
      transitions(d2, from2)
        .map((x) => `${x.group} ${x.state} ${x.reason}`)
        .sort(),
      g.filter((_, i) => preempts(i)).map((x) => `${x.name} BACKUP better-master`),
    );
    for (const [i, x] of g.entries())
      assert.equal(d1.state(x.name), preempts(i) ? 'MASTER' : 'BACKUP', x.name);
    assertAlive(d1, d2);
  });
});
