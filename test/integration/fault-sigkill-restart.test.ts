// Fault: the master's daemon is killed with SIGKILL (no bow-out, no address release) and
// started again. Half the groups preempt on the killed host, half do not.
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
  prefix: 'k',
  firstVhid: 41,
  firstOctet: 161,
  skew1: SKEW_H1,
  skew2: SKEW_H2,
});

describe('fault: SIGKILL of the master daemon, then restart', () => {
  let lab: Lab;
  let h1: Host;
  let h2: Host;
  let d1: SupervisorProc;
  let d2: SupervisorProc;
  const g = groupsFor(1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-fault-sigkill-'));
  const f1 = path.join(dir, 'h1.yaml');
  const f2 = path.join(dir, 'h2.yaml');
  const allOn = (...hs: Host[]) => new Map(g.map((x) => [vip(x), hs.map((h) => h.ns).sort()]));

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    [h1, h2] = lab.hosts;
    fs.writeFileSync(f1, configYaml(groupsFor(1), { socket: path.join(dir, 'h1.sock') }));
    fs.writeFileSync(f2, configYaml(groupsFor(2), { socket: path.join(dir, 'h2.sock') }));
    // h1 first, so that it is master of every group, also those where it does not preempt.
    d1 = new SupervisorProc(lab, h1, f1);
    await d1.waitLine(/started \d+ group/);
    d2 = new SupervisorProc(lab, h2, f2);
    await d2.waitLine(/started \d+ group/);
  });

  after(async () => {
    await lab.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('h1 is master of every group and the only holder of every address', async () => {
    await settled(lab, allOn(h1), 1000, 15000, 'every address on h1 only');
    assertAlive(d1, d2);
  });

  test('SIGKILL: h2 holds every address at its dead time; h1 keeps stale copies', async (t) => {
    const from2 = d2.lines.length;
    const t0 = Date.now();
    // By PID: this test started that process.
    process.kill(d1.child.pid!, 'SIGKILL');
    await d1.exit(5000);
    // Nothing removes h1's addresses: a killed daemon cannot, so the kernel shows two holders
    // until h1's daemon is back (the next test checks that the restart removes them).
    const dead = deadTimeMs(SKEW_H2);
    const quiet = 1000;
    const r = await settled(lab, allOn(h1, h2), quiet, dead + 3000 + quiet, 'every address on h2 too');
    const took = r.at - t0;
    t.diagnostic(
      `SIGKILL → h2 holds every address: ${took} ms (h2 dead time ${dead} ms), ` +
        `then held ${quiet} ms (${r.samples} kernel samples)`,
    );
    assert.ok(took <= dead + MARGIN_MS, `took ${took} ms, bound ${dead + MARGIN_MS} ms`);
    // The timer runs from the last advertisement h2 heard, at most one h1 interval before the
    // kill; no bow-out was sent, so an earlier takeover would be a protocol violation.
    assert.ok(took >= dead - intervalMs(SKEW_H1), `took ${took} ms: before the dead time`);
    assert.deepEqual(
      transitions(d2, from2)
        .map((x) => `${x.group} ${x.state} ${x.reason}`)
        .sort(),
      g.map((x) => `${x.name} MASTER master-down`).sort(),
    );
    assertAlive(d2);
  });

  test('restart: stale addresses go, preempting groups come back, the others stay on h2', async (t) => {
    const from2 = d2.lines.length;
    const expected = singleHolders(new Map(g.map((x, i) => [vip(x), preempts(i) ? h1 : h2])));
    const t0 = Date.now();
    d1 = new SupervisorProc(lab, h1, f1);
    await d1.waitLine(/started \d+ group/);
    const started = Date.now();
    // Held past the restarted backups' dead time: one that did not hear h2 would take over.
    const quiet = deadTimeMs(SKEW_H1) + 1000;
    const r = await settled(lab, expected, quiet, 10000 + quiet, 'preempting groups on h1, the others on h2');
    const done = r.at;
    // Each group starts as BACKUP and removes its addresses (docs/protocol.md §9, INIT →
    // BACKUP); a preempting one takes over at the first advertisement of h2 it hears, within
    // one of h2's intervals of starting.
    const bound = intervalMs(SKEW_H2) + MARGIN_MS;
    t.diagnostic(
      `restart → one holder per address: ${done - t0} ms after spawn, ${done - started} ms after ` +
        `the daemon logged its groups started (bound ${bound} ms); node start-up ${started - t0} ms; ` +
        `then held ${quiet} ms (${r.samples} kernel samples)`,
    );
    assert.ok(done - started <= bound, `took ${done - started} ms after start, bound ${bound} ms`);

    const stale = (await lab.addresses(h1)).filter((a) => g.some((x, i) => !preempts(i) && vip(x) === a));
    assert.deepEqual(stale, [], 'no stale address of a non-preempting group left on h1');
    assert.deepEqual(
      transitions(d1)
        .map((x) => `${x.group} ${x.state} ${x.reason}`)
        .sort(),
      g
        .flatMap((x, i) => [`${x.name} BACKUP start`, ...(preempts(i) ? [`${x.name} MASTER preempt`] : [])])
        .sort(),
    );
    assert.deepEqual(
      transitions(d2, from2)
        .map((x) => `${x.group} ${x.state} ${x.reason}`)
        .sort(),
      g.filter((_, i) => preempts(i)).map((x) => `${x.name} BACKUP better-master`),
    );
    assertAlive(d1, d2);
  });
});
