// Weighted tracking against Debian's ucarp: a file tracker (the operator's drain switch) adds
// its value × weight to the advskew our master advertises. A ucarp peer with -P sees a worse
// master and takes over; without -P it does not (demotion only moves what preemption allows).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab } from '../helpers/netns';
import { CarpProc, carpArgs } from '../helpers/carp-proc';
import { Node } from '../helpers/fault';

/**
 * Our daemon on h1 as the master of group web (vhid 10, ucarp's password and address, the
 * address left to scripts as with ucarp), following the trackers in `top` through `track`.
 */
async function startOurs(lab: Lab, root: string, top: string, track: string): Promise<Node> {
  const ours = new Node(
    lab,
    lab.host(1),
    root,
    [
      {
        name: 'web',
        vhid: 10,
        iface: 'eth0',
        addresses: ['192.0.2.100/24'],
        password: 'secret',
        advskew: 0,
        extra: { track, manage_addresses: false },
      },
    ],
    top,
  );
  ours.start();
  await ours.waitState('web', 'MASTER');
  return ours;
}

function scenario(preempt: boolean): void {
  describe(`file tracker weight demotes our master; Debian ucarp ${preempt ? 'with' : 'without'} -P`, () => {
    let lab: Lab;
    let ours: Node;
    let peer: CarpProc;
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-demote-'));
    const drain = path.join(root, 'maintenance');

    before(async () => {
      lab = await Lab.create({ hosts: 2 });
      const top = ['trackers:', '  maintenance:', `    file: ${drain}`, '    interval: 0.2'].join('\n');
      ours = await startOurs(lab, root, top, '[{ tracker: maintenance, weight: 100 }]');
      peer = new CarpProc(
        lab,
        lab.host(2),
        'ucarp',
        carpArgs(lab.host(2), { advskew: 50, extra: preempt ? ['-P'] : [] }),
      );
      await peer.waitState('BACKUP');
    });

    after(async () => {
      peer?.kill();
      await ours?.stop().catch(() => undefined);
      await lab?.destroy();
      fs.rmSync(root, { recursive: true, force: true });
    });

    it(`an operator writes 1 to the drain file: ${preempt ? 'ucarp takes over' : 'nothing moves'}`, async (t) => {
      const t0 = Date.now();
      fs.writeFileSync(drain, '1\n');
      await ours.proc.waitLine(/tracker maintenance: .* 1/, 0, 3000);
      const g = await ours.group('web');
      assert.equal(g.demotion, 100);
      assert.equal(g.advskew, 100, 'advertised advskew 0 + 1 × 100');
      if (preempt) {
        await peer.waitState('MASTER', 4000);
        await ours.waitState('web', 'BACKUP', 2000);
        t.diagnostic(`drain file written → ucarp master after ${Date.now() - t0} ms`);
      } else {
        await new Promise((r) => setTimeout(r, 4000));
        assert.equal(peer.state, 'BACKUP');
        assert.equal((await ours.group('web')).state, 'MASTER');
      }
    });

    it('a value past the cap saturates at advskew 240, not an error', async () => {
      fs.writeFileSync(drain, '9\n');
      await ours.proc.waitLine(/tracker maintenance: .* 9/, 0, 3000);
      const g = await ours.group('web');
      assert.equal(g.demotion, 900);
      assert.equal(g.advskew, 240);
    });
  });
}

scenario(true);
scenario(false);

describe('a tracker without weight against Debian ucarp: FAULT moves it even without -P', () => {
  let lab: Lab;
  let ours: Node;
  let peer: CarpProc;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ucarp-fault-ucarp-'));
  const up = path.join(root, 'service-up');

  before(async () => {
    fs.writeFileSync(up, '');
    lab = await Lab.create({ hosts: 2 });
    const top = [
      'trackers:',
      '  service:',
      `    script: [/usr/bin/test, -e, ${up}]`,
      '    interval: 0.2',
    ].join('\n');
    ours = await startOurs(lab, root, top, '[service]');
    peer = new CarpProc(lab, lab.host(2), 'ucarp', carpArgs(lab.host(2), { advskew: 50 }));
    await peer.waitState('BACKUP');
  });

  after(async () => {
    peer?.kill();
    await ours?.stop().catch(() => undefined);
    await lab?.destroy();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('the service fails: our master bows out and ucarp takes over well before its dead time', async (t) => {
    const t0 = Date.now();
    fs.rmSync(up);
    await ours.waitState('web', 'FAULT', 3000);
    await peer.waitState('MASTER', 2500);
    const ms = Date.now() - t0;
    t.diagnostic(`service down on our master → Debian ucarp master after ${ms} ms (its dead time 3.2 s)`);
    assert.ok(ms < 2500, `${ms} ms`);
  });
});
