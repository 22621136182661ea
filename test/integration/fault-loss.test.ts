// Fault: a lossy segment. For 30 s the switch drops 30 % of the frames it forwards, at random
// and independently for each port a frame leaves by. This kernel has no netem, so the loss is an
// nftables rule on the bridge's forward hook in the switch namespace.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Lab, Host } from '../helpers/netns';
import { SupervisorProc, TestGroup } from '../helpers/supervisor-proc';
import {
  assertAlive,
  deadTimeMs,
  holders,
  intervalMs,
  reached,
  settled,
  singleHolders,
  sleep,
  transitions,
  vip,
  startDaemons,
} from '../helpers/fault';

const run = promisify(execFile);

const GROUPS = 10;
const SKEW_PREFERRED = 0;
const SKEW_OTHER = 20;
const LOSS_PERCENT = 30;
const LOSS_MS = 30_000;
/** Log timestamps of two lines of one daemon; both are written right after the event. */
const JITTER_MS = 100;
const MARGIN_MS = 500;

/** h1 is preferred for even groups, h2 for odd ones, so both hosts are master and backup. */
const preferredIndex = (i: number) => (i % 2 === 0 ? 1 : 2);

function groupsFor(h: number): TestGroup[] {
  return Array.from({ length: GROUPS }, (_, i) => ({
    name: `l${i}`,
    vhid: 31 + i,
    iface: 'eth0',
    addresses: [`192.0.2.${141 + i}/24`],
    advskew: preferredIndex(i) === h ? SKEW_PREFERRED : SKEW_OTHER,
    preempt: true,
  }));
}

// Two rules so the drop rate actually applied can be read back: every forwarded frame is
// counted, then a random 30 % of them are counted again and dropped. The bridge family's
// forward hook sees each copy of a flooded frame separately, so each receiver loses its own.
const LOSS_RULESET = `table bridge ucarp_loss {
  chain forward_loss {
    type filter hook forward priority 0; policy accept;
    counter
    numgen random mod 100 < ${LOSS_PERCENT} counter drop
  }
}
`;

interface NftCounter {
  counter?: { packets: number };
}

describe(`fault: ${LOSS_PERCENT} % random loss on the segment for ${LOSS_MS / 1000} s`, () => {
  let lab: Lab;
  let d: SupervisorProc[];
  const g = groupsFor(1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-fault-loss-'));
  const preferred = (i: number): Host => lab.host(preferredIndex(i));
  const steady = () => singleHolders(new Map(g.map((x, i) => [vip(x), preferred(i)])));
  const nft = (...args: string[]) => run('ip', ['netns', 'exec', lab.sw, 'nft', ...args]);

  async function counters(): Promise<{ seen: number; dropped: number }> {
    const { stdout } = await nft('-j', 'list', 'table', 'bridge', 'ucarp_loss');
    const rules = (JSON.parse(stdout) as { nftables: { rule?: { expr: NftCounter[] } }[] }).nftables
      .filter((o) => o.rule)
      .map((o) => o.rule!.expr.find((e) => e.counter)?.counter?.packets ?? 0);
    assert.equal(rules.length, 2, 'both loss rules are installed');
    return { seen: rules[0], dropped: rules[1] };
  }

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
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

  test('under loss the preferred master never lets go; backups take over only per protocol', async (t) => {
    const from = d.map((x) => x.lines.length);
    const rulesFile = path.join(dir, 'loss.nft');
    fs.writeFileSync(rulesFile, LOSS_RULESET);
    await nft('-f', rulesFile);
    const t0 = Date.now();

    // The kernel's view every ~50 ms: the preferred master must hold its address in every
    // sample (it is the best node: nothing it can hear makes it step down, docs/protocol.md
    // §9); the other host may hold it too while it wrongly believes the master dead.
    let samples = 0;
    const doubled = new Map<string, number>();
    while (Date.now() - t0 < LOSS_MS) {
      const h = await holders(lab);
      samples++;
      for (const [i, x] of g.entries()) {
        const on = h.get(vip(x)) ?? [];
        assert.ok(on.includes(preferred(i).ns), `${vip(x)} not on its preferred master: [${on.join(', ')}]`);
        if (on.length > 1) doubled.set(x.name, (doubled.get(x.name) ?? 0) + 1);
      }
      await sleep(50);
    }

    // Still under loss: a backup that took over yields at the first advertisement of the
    // master it hears; each one is lost with 30 % probability, hence the generous timeout.
    const tEnd = Date.now();
    const atEnd = (await reached(lab, steady(), 15000, 'one holder per address, still under loss')) - tEnd;
    const { seen, dropped } = await counters();
    await nft('delete', 'table', 'bridge', 'ucarp_loss');
    const tClear = Date.now();

    // Loss removed: one holder per address for good, held past every dead time. A backup
    // that took over just before the rules went yields at the master's next advertisement.
    const quiet = deadTimeMs(SKEW_OTHER) + 1000;
    const r = await settled(lab, steady(), quiet, 5000 + quiet, 'one holder per address after the loss');
    const clear = Math.max(0, r.at - tClear);
    const clearBound = intervalMs(SKEW_PREFERRED) + MARGIN_MS;
    assert.ok(clear <= clearBound, `took ${clear} ms after the loss ended, bound ${clearBound} ms`);
    // Counted up to here, so that a takeover in the last instants of the loss is complete.
    const lossWindow = Date.now() - t0;

    const rate = dropped / seen;
    t.diagnostic(`nft: ${dropped} of ${seen} forwarded frames dropped (${(rate * 100).toFixed(1)} %)`);
    // A rule that did not apply (0 %) or a wrong expression shows here; with ~300 frames the
    // bounds are about 5 standard deviations from 30 %, so chance alone does not trip them.
    assert.ok(seen > 200 && rate > 0.18 && rate < 0.42, `drop rate ${rate} over ${seen} frames`);

    const all = d.flatMap((x, k) => transitions(x, from[k]).map((tr) => ({ ...tr, host: k + 1 })));
    let takeovers = 0;
    for (const [i, x] of g.entries()) {
      const mine = all.filter((tr) => tr.group === x.name);
      const shown = mine.map((tr) => `h${tr.host} ${tr.state} ${tr.reason} +${tr.at - t0}`).join(', ');
      assert.ok(
        mine.every((tr) => tr.host !== preferredIndex(i)),
        `${x.name}: preferred master moved: ${shown}`,
      );
      // The backup alternates: a takeover only because its dead time ran out, a step-down
      // only because it heard the better master; and it can only take over again a whole dead
      // time after stepping down (the step-down restarts its timer, docs/protocol.md §8–§9).
      const dead = deadTimeMs(SKEW_OTHER);
      mine.forEach((tr, k) => {
        const want = k % 2 === 0 ? 'MASTER master-down' : 'BACKUP better-master';
        assert.equal(`${tr.state} ${tr.reason}`, want, `${x.name}: ${shown}`);
        if (k >= 2 && tr.state === 'MASTER') {
          const gap = tr.at - mine[k - 1].at;
          assert.ok(gap >= dead - JITTER_MS, `${x.name}: took over ${gap} ms after stepping down: ${shown}`);
        }
      });
      assert.equal(mine.length % 2, 0, `${x.name} ends as it began, backup on the other host: ${shown}`);
      const n = mine.length / 2;
      takeovers += n;
      // Each takeover but the first needs a dead time of silence after the previous one.
      assert.ok(n <= Math.floor(lossWindow / dead) + 1, `${x.name}: ${n} takeovers in ${lossWindow} ms`);
    }
    const doubledMs = [...doubled.values()].reduce((a, b) => a + b, 0) * (lossWindow / samples);
    t.diagnostic(
      `${LOSS_MS} ms at ${LOSS_PERCENT} % loss, ${GROUPS} groups: ${takeovers} spurious takeover(s) by a backup ` +
        `(${all.length} transitions, all on backups, preferred masters 0), ` +
        `bound per group ${Math.floor(lossWindow / deadTimeMs(SKEW_OTHER)) + 1}`,
    );
    t.diagnostic(
      `kernel: ${samples} samples; preferred master held its address in all; ` +
        `two holders in ${[...doubled.values()].reduce((a, b) => a + b, 0)} group-samples ` +
        `(~${Math.round(doubledMs)} group-ms, ${[...doubled.keys()].join(' ') || 'none'})`,
    );
    t.diagnostic(`end of the loss window → one holder per address (still lossy): ${atEnd} ms`);
    t.diagnostic(
      `loss removed → one holder per address for good: ${clear} ms (bound ${clearBound} ms), ` +
        `then held ${quiet} ms (${r.samples} kernel samples)`,
    );
    assertAlive(...d);
  });
});
